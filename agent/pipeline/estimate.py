"""A dry run's figures: every document's tokens and cost, counted with tiktoken, before any call.

Imports `agent.pipeline.stages` only, of the pipeline.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from agent.core.cost import call_cost
from agent.core.models import review_max_tokens
from agent.core.records import Usage
from agent.core.settings import Settings
from agent.core.tdd import load_tdd
from agent.core.templates import Template
from agent.core.tokens import count_tokens
from agent.draft.plan import plan_messages, section_schema
from agent.pipeline.stages import resolve_review, resolve_revisions
from agent.providers import ProviderShape, default_max_tokens
from agent.review import BATCH_SIZE


class DocEstimate(BaseModel):
    """A dry run's figures for one document: tiktoken counts, before any call."""

    tdd: str
    name: str
    sections: int
    input_tokens: int
    output_tokens: int = Field(description="an upper bound: max_tokens per section call")
    cost_usd: float | None


def estimate_batch(paths: list[Path], template: Template, settings: Settings) -> list[DocEstimate]:
    """Token and cost estimates for every TDD with tiktoken; no provider is opened.

    Input counts each section call's messages and its schema; output assumes
    every call uses its whole `max_tokens`. Review adds its checklist calls
    (with --review llm) and, as a bound, a re-draft of every section in every
    revision round. The price ignores cache discounts, so the cost is an upper
    bound, retries and research calls aside.
    """
    shape = ProviderShape(settings.model)
    max_tokens = settings.max_tokens or default_max_tokens(settings.model)
    review = resolve_review(settings.review, shape)  # type: ignore[arg-type]
    rounds = resolve_revisions(settings.max_revisions, shape) if review != "off" else 0  # type: ignore[arg-type]
    review_calls = (
        -(-len(template.checklist) // BATCH_SIZE) * (1 + rounds) if review == "llm" else 0
    )
    estimates: list[DocEstimate] = []
    for path in paths:
        tdd = load_tdd(path)
        plan = plan_messages(
            template, tdd, shape, max_tokens=max_tokens, schema_in_text=shape.schema_in_text
        )
        drafts = 0
        for section in template.sections:
            if section.id not in plan.requests:
                continue
            schema = section_schema(section, plan.cites)[1]
            drafts += sum(count_tokens(m.content) for m in plan.requests[section.id])
            drafts += count_tokens(str(schema))
        calls = len(plan.requests)
        document = max_tokens * calls  # the drafted document, at most
        # A revision resends the section's messages plus its previous reply.
        inputs = drafts * (1 + rounds) + rounds * document + review_calls * (document + 1000)
        outputs = document * (1 + rounds) + review_calls * min(max_tokens, review_max_tokens())
        cost = call_cost(shape, Usage(input_tokens=inputs, output_tokens=outputs))
        estimates.append(
            DocEstimate(
                tdd=str(path),
                name=path.stem,
                sections=len(plan.requests),
                input_tokens=inputs,
                output_tokens=outputs,
                cost_usd=cost,
            )
        )
    return estimates
