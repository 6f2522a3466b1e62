"""The model side of `tidsmith update`: each affected section's call, or its estimate.

A section's update call starts from the plan's messages for it, then the
section as it was generated (as the assistant's turn), then the change: the
TDD headings' diff and, with a codebase, the claims it contradicts. Imports
core, providers and draft; never the pipeline, the other stages or a front end.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from agent.core.cost import call_cost
from agent.core.errors import OutputValidationError
from agent.core.records import CallRecord, Usage
from agent.core.settings import Settings
from agent.core.tdd import Tdd
from agent.core.templates import Template, section_heading
from agent.core.tokens import count_tokens
from agent.draft.plan import DraftPlan, plan_messages, section_schema
from agent.draft.prompting import PromptFile, fill
from agent.draft.sections import structured_call, with_facts
from agent.providers import (
    ProviderShape,
    default_max_tokens,
    open_configured,
    provider_default_max_tokens,
)
from agent.providers.base import Message, Provider
from agent.update.affected import AffectedSections, changes_text
from agent.update.state import UpdateState

PROMPT_ID = "update_section"

# A re-drafted section: its id, the model's content, and the calls it took.
Redrafted = tuple[str, dict[str, Any], list[CallRecord]]


@dataclass
class SectionMessages:
    """Builds each affected section's messages from what the update found."""

    state: UpdateState
    tdd: Tdd
    template: Template
    sections: AffectedSections
    saved: dict[str, Any]  # section id -> the content it was rendered from
    prompt: PromptFile

    def for_section(self, plan_messages: list[Message], section_id: str) -> list[Message]:
        template, drift = self.template, self.sections.drift
        section = next(s for s in template.sections if s.id == section_id)
        why = [w for w in self.sections.affected[section_id] if w not in drift.get(section_id, [])]
        changes = changes_text(self.state, self.tdd, why)
        if drift.get(section_id):
            changes += "\n\nClaims the codebase contradicts:\n" + "\n".join(
                f"- {m}" for m in drift[section_id]
            )
        previous = json.dumps(self.saved.get(section_id, {}), ensure_ascii=False)
        user = fill(
            self.prompt.user, section_heading=section_heading(template, section), changes=changes
        )
        return [
            *plan_messages,
            Message(role="assistant", content=previous),
            Message(role="user", content=user.strip()),
        ]


@dataclass
class SectionRedraft:
    """What every section's update call shares: provider, plan, limit and token budget."""

    provider: Provider
    messages: SectionMessages
    plan: DraftPlan
    limit: asyncio.Semaphore
    max_tokens: int

    async def redraft(self, section_id: str) -> Redrafted:
        """One section's structured call; an unusable answer stops the update."""
        template, prompt = self.messages.template, self.messages.prompt
        section = next(s for s in template.sections if s.id == section_id)
        model, schema = section_schema(section, self.plan.cites)
        async with self.limit:
            parsed, calls, error = await structured_call(
                self.provider,
                prompt,
                model,
                self.messages.for_section(self.plan.requests[section_id], section_id),
                label=section_id,
                schema_name=f"section_{section_id}",
                max_tokens=self.max_tokens,
                json_schema=schema,
            )
        if parsed is None:
            raise OutputValidationError(
                f"section {section_heading(template, section)!r} (prompt {PROMPT_ID} "
                f"v{prompt.version}): the model's update was not usable: {error}; "
                "nothing was written"
            )
        # Checked as a first draft is, by code: the TDD's files, versions, routes, codes.
        content, _ = with_facts(section, parsed.model_dump(), self.plan.facts(section_id))
        return section_id, content, calls


async def redraft_sections(
    messages: SectionMessages, settings: Settings, provider: Provider | None
) -> list[Redrafted]:
    """Re-draft the affected sections concurrently; opens (and closes) a provider if none given."""
    todo = messages.sections.todo
    owns_provider = provider is None
    if provider is None:
        provider = await open_configured(settings)
    try:
        max_tokens = settings.max_tokens or provider_default_max_tokens(provider)
        plan = plan_messages(
            messages.template,
            messages.tdd,
            provider,
            max_tokens=max_tokens,
            schema_in_text=provider.schema_in_text,
            sections=todo,
        )
        limit = asyncio.Semaphore(max(1, min(settings.concurrency, provider.max_concurrency)))
        calls = SectionRedraft(provider, messages, plan, limit, max_tokens)
        return await asyncio.gather(*(calls.redraft(s.id) for s in todo))
    finally:
        if owns_provider:
            await provider.aclose()


@dataclass
class Estimate:
    """Tokens (tiktoken) and price of the calls an update would make."""

    input_tokens: int
    output_tokens: int
    usd: float | None


def estimate_redraft(messages: SectionMessages, model: str, max_tokens: int | None) -> Estimate:
    """What re-drafting the affected sections would cost; nothing is called."""
    todo = messages.sections.todo
    shape = ProviderShape(model)
    limit = max_tokens or default_max_tokens(model)
    plan = plan_messages(
        messages.template,
        messages.tdd,
        shape,
        max_tokens=limit,
        schema_in_text=shape.schema_in_text,
        sections=todo,
    )
    inputs = 0
    for section in todo:
        inputs += sum(
            count_tokens(m.content)
            for m in messages.for_section(plan.requests[section.id], section.id)
        )
        inputs += count_tokens(str(section_schema(section, plan.cites)[1]))
    outputs = limit * len(todo)
    usd = call_cost(shape, Usage(input_tokens=inputs, output_tokens=outputs))
    return Estimate(inputs, outputs, usd)
