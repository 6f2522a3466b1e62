"""Draft: one structured-output call per template section, run concurrently.

The first call goes alone so the provider caches the shared prefix; the rest
fan out under one concurrency limit. Every reply is validated against the
section's pydantic model; an invalid reply is asked again once with the error,
then the section fails loudly. The calls themselves are `agent.draft.calls`'s,
the repairs after validation `agent.draft.repair`'s (text) and
`agent.draft.code_repair`'s (code). Imports core, document, providers and the
rest of the draft stage; never a later stage or a front end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel

from agent.core.errors import OutputValidationError
from agent.core.filetree import add_missing
from agent.core.records import CallRecord, Event, Progress, quiet
from agent.core.templates import (
    Section,
    Template,
    opens_not_applicable,
    section_heading,
)
from agent.document.error_codes import check_error_codes
from agent.document.routes import check_routes
from agent.document.versions import check_versions
from agent.draft.calls import (
    FINAL_FINISH_REASONS,
    MarkdownReply,
    parse_reply,
    structured_call,
)
from agent.draft.checkpoint import SectionCheckpoint, draft_key
from agent.draft.code_repair import CodeAsks, repair_code, settle_code
from agent.draft.markdown_reply import based_on, markdown_grammar, markdown_shape, read_markdown
from agent.draft.plan import (
    MARKDOWN_PROMPT_ID,
    PROMPT_ID,
    DraftPlan,
    SectionDraft,
    SectionFacts,
    section_schema,
)
from agent.draft.prompting import PromptFile, load_prompt
from agent.draft.repair import uncut
from agent.providers.base import Message, Provider, schema_budget


class SectionFailed(OutputValidationError):
    """A section whose replies never validated; keeps the calls for the record."""

    def __init__(self, message: str, calls: list[CallRecord]) -> None:
        super().__init__(message)
        self.calls = calls


_NOT_APPLICABLE = "this section applies"
_SHOWN_EVIDENCE = 6


def says_not_applicable(content: dict[str, Any]) -> bool:
    """Whether a section reply's text, or a list's first item, opens with "Not applicable"."""
    for value in content.values():
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(first, str) and opens_not_applicable(first):
            return True
    return False


def _applies_check(
    evidence: list[str],
) -> tuple[Callable[[BaseModel], None] | None, list[BaseModel]]:
    """A reply check that raises when a reply calls the section "Not applicable"
    against `evidence` (None without evidence), and the replies it saw.

    The replies are kept so that one asked again and still "Not applicable" is
    kept, not failed: the section is drafted either way.
    """
    seen: list[BaseModel] = []
    if not evidence:
        return None, seen
    shown = ", ".join(f"`{e}`" for e in evidence[:_SHOWN_EVIDENCE])
    unshown = len(evidence) - _SHOWN_EVIDENCE
    more = f", and {unshown} more" if unshown > 0 else ""

    def check(reply: BaseModel) -> None:
        seen.append(reply)
        if says_not_applicable(reply.model_dump()):
            raise ValueError(
                f"{_NOT_APPLICABLE}: the TDD defines {shown}{more}. Write the section for "
                'them, as the fields ask, instead of "Not applicable".'
            )

    return check, seen


def _failure(where: str, calls: list[CallRecord], error: str) -> SectionFailed:
    """The error for a section with no usable reply, with what to try next."""
    if (calls and calls[-1].finish_reason in FINAL_FINISH_REASONS) or error.startswith(
        "the model refused"
    ):
        # A refusal or a filter is the model's answer: a larger model is no fix.
        return SectionFailed(f"{where}: {error}; the request was not asked again", calls)
    if "cut off" in error:
        return SectionFailed(
            f"{where}: {error}; raise --max-tokens, or lower the section's bounds in the template",
            calls,
        )
    return SectionFailed(
        f"{where}: the model's reply was not usable after {len(calls)} attempts: {error}; "
        "try a larger model or raise --max-tokens",
        calls,
    )


async def draft_section(
    provider: Provider,
    template: Template,
    section: Section,
    messages: list[Message],
    *,
    max_tokens: int,
    on_event: Progress = quiet,
    cites: bool = False,
    applies: list[str] | None = None,
    facts: SectionFacts | None = None,
    markdown: bool = False,
) -> SectionDraft:
    """One section: call, validate, ask again once with the error, or fail.

    "Not applicable" against `applies` (`_applies_check`): asked again once.
    What the TDD gives completes and checks the reply (`with_facts`).
    `markdown`: `messages` ask for markdown (`draft_markdown`), read back by code
    into the section's fields, held to `markdown_shape`'s bounds (fitted there).
    """
    shortened: list[str] = []
    budget = schema_budget(provider, max_tokens)
    prompt, model, schema, reading = _asking(
        section, cites, shortened if markdown else None, budget
    )
    check, seen = _applies_check(applies or [])
    parsed, calls, error = await structured_call(
        provider,
        prompt,
        model,
        messages,
        label=section.id,
        schema_name=f"section_{section.id}",
        max_tokens=max_tokens,
        json_schema=schema,
        check=check,
        on_event=on_event,
        markdown=reading,
    )
    if parsed is None and seen:
        parsed = seen[-1]  # turned down only by the check: it stands (review reports it)
    if parsed is None:
        raise _failure(_where(template, section, prompt), calls, error)
    content, notes, more = await _made_whole(
        provider,
        template,
        section,
        messages,
        parsed.model_dump(),
        schema,
        facts or SectionFacts(),
        max_tokens=max_tokens,
        on_event=on_event,
        markdown=markdown,
    )
    if markdown:  # its "Based on", read against the TDD's headings
        content["tdd_refs"] = based_on(
            content["tdd_refs"], (facts or SectionFacts()).headings, str(content)
        )
    return _drafted(section.id, content, [*shortened, *notes], [*calls, *more], on_event)


def _drafted(
    section_id: str,
    content: dict[str, Any],
    notes: list[str],
    calls: list[CallRecord],
    on_event: Progress,
) -> SectionDraft:
    """The section's draft, its notes said as they are kept."""
    for note in notes:
        on_event(Event(kind="info", section=section_id, detail=note))
    return SectionDraft(
        section_id=section_id,
        content=content,
        tdd_refs=[str(r) for r in content.get("tdd_refs", [])],
        note_refs=[str(r) for r in content.get("note_refs", [])],
        calls=calls,
        notes=notes,
    )


def _where(template: Template, section: Section, prompt: PromptFile) -> str:
    return f"section {section_heading(template, section)!r} (prompt {prompt.id} v{prompt.version})"


def _asking(
    section: Section, cites: bool, shortened: list[str] | None, budget: int | None
) -> tuple[PromptFile, type[BaseModel], dict[str, Any], MarkdownReply | None]:
    """The prompt, model and schema a section's reply is held to, and how a markdown
    reply is read (`shortened` given: the section is asked for as markdown; its
    schema holds the bounds its grammar enforces, fitted to `budget`)."""
    if shortened is None:
        return load_prompt(PROMPT_ID), *section_schema(section, cites), None
    model, schema = markdown_shape(section, cites, budget)
    return (
        load_prompt(MARKDOWN_PROMPT_ID),
        model,
        schema,
        _markdown_reading(section, schema, shortened),
    )


def _markdown_reading(
    section: Section, schema: dict[str, Any], shortened: list[str]
) -> MarkdownReply:
    """Markdown asked for under `section`'s sub-headings, read into `schema`'s shape;
    what reading shortened to fit goes into `shortened` (the last reply read's)."""

    def read(text: str) -> dict[str, Any]:
        content, notes = read_markdown(section, text, schema)
        shortened[:] = notes
        return content

    return MarkdownReply(grammar=markdown_grammar(section, schema), read=read)


async def _made_whole(
    provider: Provider,
    template: Template,
    section: Section,
    messages: list[Message],
    content: dict[str, Any],
    schema: dict[str, Any],
    facts: SectionFacts,
    *,
    max_tokens: int,
    on_event: Progress,
    markdown: bool = False,
) -> tuple[dict[str, Any], list[str], list[CallRecord]]:
    """A validated reply with no cut text (`uncut`), no code that is only comments or
    does not parse (`settle_code`), completed and checked (`with_facts`): content,
    notes, calls. `markdown`: drafted as markdown, so its bounds are the grammar's
    own (not fitted again) and its code calls reply as one fenced block too."""
    content, notes, calls = await uncut(
        provider,
        section,
        messages,
        content,
        schema=schema,
        max_tokens=max_tokens,
        on_event=on_event,
        fitted=not markdown,
    )
    asks = CodeAsks(provider, template, section, messages[0], max_tokens, on_event, markdown)
    content, code_notes, more = await settle_code(asks, content)
    content, fact_notes = with_facts(section, content, facts)
    return content, [*notes, *code_notes, *fact_notes], [*calls, *more]


def with_facts(
    section: Section, content: dict[str, Any], facts: SectionFacts
) -> tuple[dict[str, Any], list[str]]:
    """The TDD's files added to a tree (`complete_trees`); Version cells, route
    methods and error codes checked (`check_versions`, `check_routes`,
    `check_error_codes`): content and notes. Code, no call: a batch reply gets it too."""
    content, notes = complete_trees(section, content, facts.files)
    content, versions = check_versions(section, content, facts.versions)
    content, routes = check_routes(section, content, facts.routes)
    content, codes = check_error_codes(section, content, facts.code_lines)
    return content, [*notes, *versions, *routes, *codes]


def complete_trees(
    section: Section, content: dict[str, Any], files: list[tuple[str, str]]
) -> tuple[dict[str, Any], list[str]]:
    """Each file tree with the TDD's files it left out added, and a note per tree.

    Listed in the ask, the TDD's files were still left out: Qwen2.5-Coder-1.5B
    drew twelve of the example TDD's fifteen, without `retry.py`, `signing.py`
    and `ratelimit.py`, whose classes the TDD names.
    """
    notes: list[str] = []
    for part in section.parts:
        if part.kind == "tree" and isinstance(rows := content.get(part.id), list):
            content[part.id], added = add_missing(cast("list[dict[str, Any]]", rows), files)
            if added:
                notes.append(f"{part.id}: added the TDD's {', '.join(added)}")
    return content, notes


def _done(section_id: str, draft: SectionDraft) -> Event:
    """The event for a drafted section: its tokens and, when every call's is known, cost."""
    tokens = sum(c.output_tokens for c in draft.calls)
    costs = [c.cost_usd for c in draft.calls]
    return Event(
        kind="done",
        section=section_id,
        detail=f"{tokens} tokens",
        input_tokens=sum(c.input_tokens for c in draft.calls),
        output_tokens=tokens,
        cost_usd=None if None in costs else sum(c or 0.0 for c in costs),
    )


async def draft_all(
    provider: Provider,
    template: Template,
    plan: DraftPlan,
    *,
    concurrency: int,
    max_tokens: int,
    on_event: Progress = quiet,
    checkpoint: SectionCheckpoint | None = None,
) -> list[SectionDraft]:
    """Draft every planned section; the first alone, the rest concurrently.

    `checkpoint` loads sections already drafted from the same request and saves
    each new one once it validates. A batch limits calls across documents at the
    provider it passes in (`agent.pipeline.batch`).
    """
    order = [s for s in template.sections if s.id in plan.requests]
    limit = asyncio.Semaphore(max(1, min(concurrency, provider.max_concurrency)))

    async def draft_or_resume(section: Section) -> SectionDraft:
        key = draft_key(provider, template, section, plan, max_tokens) if checkpoint else ""
        if checkpoint is not None and (saved := checkpoint.load(section.id, key)) is not None:
            on_event(Event(kind="done", section=section.id, detail="from checkpoint", resumed=True))
            return saved
        async with limit:
            on_event(Event(kind="start", section=section.id))
            try:
                draft = await draft_section(
                    provider,
                    template,
                    section,
                    plan.requests[section.id],
                    max_tokens=max_tokens,
                    on_event=on_event,
                    cites=plan.cites,
                    applies=plan.applies.get(section.id),
                    facts=plan.facts(section.id),
                    markdown=plan.draft_as == "markdown",
                )
            except OutputValidationError as e:
                on_event(Event(kind="failed", section=section.id, detail=str(e)))
                raise
        if checkpoint is not None:
            checkpoint.save(key, draft)
        on_event(_done(section.id, draft))
        return draft

    if not order:
        return []
    first = await draft_or_resume(order[0])
    # Let the other sections finish even when one fails, so their calls are
    # recorded and nothing is left running; then report the first failure.
    rest = await asyncio.gather(*(draft_or_resume(s) for s in order[1:]), return_exceptions=True)
    for result in rest:
        if isinstance(result, BaseException):
            raise result
    return [first, *(r for r in rest if isinstance(r, SectionDraft))]


__all__ = [
    "SectionFailed",
    "complete_trees",
    "draft_all",
    "draft_section",
    "parse_reply",
    "repair_code",
    "section_schema",
    "structured_call",
    "with_facts",
]
