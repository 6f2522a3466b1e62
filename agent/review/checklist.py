"""The model's checklist review: one structured call per batch of checklist items.

Only items that need judgement reach the model, and only for sections whose
lints passed. Imports core, document, providers and the draft stage's prompts
and structured calls; never the pipeline or a front end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from agent.core.models import review_max_tokens
from agent.core.records import CallRecord, Event, Progress, quiet
from agent.core.tdd import Tdd, excerpt
from agent.core.templates import ChecklistItem, Template
from agent.core.tokens import count_tokens, truncate_tokens
from agent.document.lints import DocSection, split_document
from agent.draft.calls import structured_call
from agent.draft.prompting import PromptFile, fence_safe, fill, format_note, load_prompt
from agent.providers.base import Message, Provider
from agent.review.report import Verdict

REVIEW_PROMPT = "review_checklist"
BATCH_SIZE = 5
_TOKENIZER_SLACK = 1.3


def _reply_model(items: list[ChecklistItem], section_ids: list[str]) -> type[BaseModel]:
    """The reply schema for one batch: a verdict per item, ids and sections as enums."""
    # Dynamic Literals: the schema lists the only ids a reply may use.
    item_id: Any = Literal[tuple(i.id for i in items)]  # pyright: ignore[reportInvalidTypeForm]
    section: Any = Literal[(*section_ids, "")]  # pyright: ignore[reportInvalidTypeForm]
    verdict = create_model(
        "ChecklistVerdict",
        __config__=ConfigDict(extra="forbid"),
        id=(item_id, Field(description="the checklist item id")),
        reason=(
            str,
            Field(description="one or two sentences: what meets or misses it", max_length=300),
        ),
        passed=(bool, Field(description="true only if the document clearly meets the item")),
        section=(section, Field(description="id of the section to fix; empty when passed")),
    )
    many: Any = list[verdict]
    return create_model(
        "ChecklistReview",
        __config__=ConfigDict(extra="forbid"),
        verdicts=(
            many,
            Field(description="one verdict per item", min_length=len(items), max_length=len(items)),
        ),
    )


def _batch_document(markdown: str, doc: list[DocSection], items: list[ChecklistItem]) -> str:
    wanted = {s for i in items for s in i.sections}
    if any(not i.sections for i in items):
        return markdown
    parts = [s.text.strip() for s in doc if s.section_id in wanted]
    return "\n\n".join(parts) or markdown


def _batch_messages(
    prompt: PromptFile,
    schema: dict[str, Any],
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    document: str,
    items: list[ChecklistItem],
    max_tokens: int,
) -> list[Message]:
    """The system and user messages for one batch: the document, the items, a TDD excerpt."""
    room = int((provider.context_window - max_tokens) / _TOKENIZER_SLACK) - 600
    document = truncate_tokens(document, max(200, room * 2 // 3))
    lines = [f"- {i.id}: {i.text}" for i in items]
    user = fill(
        prompt.user,
        document=fence_safe(document.strip()),
        section_ids=", ".join(s.id for s in template.sections),
        items="\n".join(lines),
        format_note=format_note(prompt, schema, provider.schema_in_text),
    )
    tdd_text = ""
    if tdd is not None:
        budget = room - count_tokens(user)
        if budget >= 200:
            tdd_text = excerpt(tdd, " ".join(i.text for i in items), budget)
    system = fill(prompt.system, doc_name=template.title, tdd_text=fence_safe(tdd_text.strip()))
    return [Message(role="system", content=system), Message(role="user", content=user)]


def _every_item_answered(items: list[ChecklistItem]) -> Callable[[BaseModel], None]:
    """A reply check: a verdict for each item asked (ValueError names the missing ones)."""

    def check(reply: BaseModel) -> None:
        given = {v["id"] for v in reply.model_dump(mode="json")["verdicts"]}
        missing = [i.id for i in items if i.id not in given]
        if missing:
            raise ValueError(f"no verdict for items {missing}; give one per item")

    return check


def _reply_verdicts(items: list[ChecklistItem], reply: BaseModel) -> list[Verdict]:
    """The validated reply as one verdict per item; a failed item names a section to fix."""
    got = {v["id"]: v for v in reply.model_dump(mode="json")["verdicts"]}
    verdicts: list[Verdict] = []
    for item in items:
        v = got[item.id]
        passed = bool(v["passed"])
        section = v["section"] or None
        if not passed and section is None and item.sections:
            section = item.sections[0]
        verdicts.append(
            Verdict(
                item=item.id,
                text=item.text,
                passed=passed,
                status="pass" if passed else "fail",
                reason=str(v["reason"]),
                section=None if passed else section,
            )
        )
    return verdicts


def _not_reviewed(items: list[ChecklistItem], error: str) -> list[Verdict]:
    return [
        Verdict(
            item=i.id,
            text=i.text,
            passed=False,
            status="not_reviewed",
            reason=f"not reviewed: the model's reply was not usable after 2 attempts: {error}",
            section=None,
        )
        for i in items
    ]


async def _review_batch(
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    document: str,
    items: list[ChecklistItem],
    label: str,
    *,
    max_tokens: int,
    on_event: Progress,
) -> tuple[list[Verdict], list[CallRecord]]:
    prompt = load_prompt(REVIEW_PROMPT)
    model = _reply_model(items, [s.id for s in template.sections])
    schema = model.model_json_schema()
    messages = _batch_messages(prompt, schema, provider, template, tdd, document, items, max_tokens)
    parsed, calls, error = await structured_call(
        provider,
        prompt,
        model,
        messages,
        label=label,
        schema_name="checklist_review",
        max_tokens=max_tokens,
        json_schema=schema,
        check=_every_item_answered(items),
        on_event=on_event,
    )
    if parsed is not None:
        return _reply_verdicts(items, parsed), calls
    on_event(Event(kind="info", detail=f"{label}: the review reply was not usable: {error}"))
    return _not_reviewed(items, error), calls


def _skipped(
    items: list[ChecklistItem], skip: set[str]
) -> tuple[dict[str, Verdict], list[ChecklistItem]]:
    """`skipped` verdicts for items about a section in `skip`, and the items left to ask."""
    verdicts: dict[str, Verdict] = {}
    asked: list[ChecklistItem] = []
    for item in items:
        failed = [s for s in item.sections if s in skip]
        if failed:
            verdicts[item.id] = Verdict(
                item=item.id,
                text=item.text,
                passed=False,
                status="skipped",
                reason=f"not asked: lints already failed in {', '.join(failed)}",
                section=failed[0],
            )
        else:
            asked.append(item)
    return verdicts, asked


async def llm_review(
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    markdown: str,
    *,
    skip_sections: set[str] | None = None,
    items: list[ChecklistItem] | None = None,
    max_tokens: int | None = None,
    batch_size: int = BATCH_SIZE,
    on_event: Progress = quiet,
) -> tuple[list[Verdict], list[CallRecord]]:
    """Checklist verdicts from the model, one structured call per batch of items.

    Items concerning a section in `skip_sections` (its lints already failed)
    are not asked and come back as `skipped`. A batch whose reply is invalid
    twice comes back as `not_reviewed`, never as passed.
    """
    max_tokens = max_tokens or review_max_tokens()
    items = list(template.checklist if items is None else items)
    doc = split_document(markdown, template)
    verdicts, asked = _skipped(items, skip_sections or set())
    batches = [asked[i : i + batch_size] for i in range(0, len(asked), batch_size)]
    limit = asyncio.Semaphore(max(1, provider.max_concurrency))

    async def review_batch(
        n: int, batch: list[ChecklistItem]
    ) -> tuple[list[Verdict], list[CallRecord]]:
        async with limit:
            label = f"review {n}/{len(batches)}"
            on_event(Event(kind="info", detail=f"{label}: {', '.join(i.id for i in batch)}"))
            document = _batch_document(markdown, doc, batch)
            return await _review_batch(
                provider,
                template,
                tdd,
                document,
                batch,
                label,
                max_tokens=max_tokens,
                on_event=on_event,
            )

    results = await asyncio.gather(*(review_batch(n, b) for n, b in enumerate(batches, 1)))
    calls: list[CallRecord] = []
    for batch_verdicts, batch_calls in results:
        verdicts.update({v.item: v for v in batch_verdicts})
        calls.extend(batch_calls)
    return [verdicts[i.id] for i in items], calls
