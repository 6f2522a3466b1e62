"""Draft: one structured-output call per template section, run concurrently.

The first call goes alone so the provider caches the shared prefix; the rest
fan out under one concurrency limit. Every reply is validated against the
section's pydantic model; an invalid reply is asked again once with the error,
then the section fails loudly.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agent.core.errors import OutputValidationError
from agent.core.records import CallRecord, Event, Progress, quiet
from agent.core.templates import Section, Template, section_heading
from agent.document.assemble import unfence
from agent.document.intact import apply_trims, broken_code, cut_message, find_cuts, replace_code
from agent.document.lints import code_error
from agent.draft.checkpoint import SectionCheckpoint
from agent.draft.plan import PROMPT_ID, DraftPlan, SectionDraft, section_schema
from agent.draft.prompting import PromptFile, fill, load_prompt
from agent.providers.base import Message, Provider, Reply, Request, call_record, schema_budget
from agent.providers.grammar import fit_ratio, fitted_length

REPAIR_PROMPT_ID = "repair_code"


_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n```\s*$", re.DOTALL)


def parse_reply(model: type[BaseModel], reply: Reply) -> BaseModel:
    """The reply as a validated model, or ValueError saying what is wrong."""
    if reply.refusal:
        raise ValueError(f"the model refused: {reply.refusal[:200]}")
    text = reply.text.strip()
    if not text:
        raise ValueError(f"the reply was empty (finish_reason: {reply.finish_reason})")
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    elif not text.startswith("{") and "{" in text:
        # JSON-in-text models sometimes chat before or after the object.
        start, end = text.index("{"), text.rfind("}")
        if end < start:
            raise ValueError(f"the reply holds no complete JSON object (it begins {text[:60]!r})")
        text = text[start : end + 1]
    try:
        # Small models' grammars let raw newlines into strings: accept them.
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as e:
        if reply.finish_reason == "length":
            raise ValueError("the reply was cut off at max_tokens before the JSON ended") from e
        raise ValueError(f"the reply is not valid JSON ({e.msg} at char {e.pos})") from e
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise ValueError(f"field {loc}: {first['msg']} ({e.error_count()} problems)") from e


# Finish reasons no re-ask can fix: the same request would be refused or filtered again.
_FINAL = {
    "refusal": "the model refused to answer",
    "content_filter": "the provider's content filter stopped the reply",
}


def final_cause(reply: Reply) -> str | None:
    """Why a reply is final and unusable (a refusal, a content filter), or None."""
    if reply.refusal:
        return f"the model refused to answer: {' '.join(reply.refusal.split())[:200]}"
    return _FINAL.get(reply.finish_reason)


def more_room(provider: Provider, request: Request, reply: Reply) -> int:
    """The reply limit to ask again with after a reply was cut off (<= the current: none)."""
    used = reply.usage.input_tokens if reply.usage is not None else 0
    limit = provider.context_window - used
    # Providers that know their model's output limit say so (optional, like schema_budget).
    room = getattr(provider, "room", None)
    if callable(room):
        known = room(request, reply)
        if isinstance(known, int):
            limit = known
    wanted = max(request.max_tokens * 2, request.max_tokens + 1024)
    return min(limit, wanted)


def reask(prompt: PromptFile, messages: list[Message], reply: Reply, error: str) -> list[Message]:
    """The conversation for asking once more with the error: never an empty message."""
    retry = Message(role="user", content=fill(prompt.retry, error=error))
    if not reply.text.strip():
        return [*messages, retry]
    return [*messages, Message(role="assistant", content=reply.text[:4000]), retry]


M = TypeVar("M", bound=BaseModel)


async def structured_call(
    provider: Provider,
    prompt: PromptFile,
    model: type[M],
    messages: list[Message],
    *,
    label: str,
    schema_name: str,
    max_tokens: int,
    json_schema: dict[str, Any] | None = None,
    temperature: float | None = None,
    check: Callable[[M], None] | None = None,
    on_event: Progress = quiet,
) -> tuple[M | None, list[CallRecord], str]:
    """One structured call, validated, asked again once with the error if the prompt has a retry.

    `check` adds validation beyond the schema (raise ValueError). Returns the
    validated reply or None, a record per attempt, and the last error. What an
    unusable reply means (fail, fall back, read as unknown) is the caller's.
    """
    request = Request(
        prompt_id=prompt.id,
        prompt_version=prompt.version,
        label=label,
        messages=messages,
        schema_name=schema_name,
        json_schema=json_schema if json_schema is not None else model.model_json_schema(),
        max_tokens=max_tokens,
    )
    if temperature is not None:
        request = request.model_copy(update={"temperature": temperature})
    # A prompt without retry text gets one attempt (chat intent: a wrong guess costs less).
    attempts = 2 if prompt.retry else 1
    calls: list[CallRecord] = []
    error = ""
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        reply = await provider.complete(request)
        record = call_record(
            provider, request, reply, attempt=attempt, latency_s=time.perf_counter() - started
        )
        final = final_cause(reply)
        if final is not None:
            # Asking again would be refused or filtered again, and paid for again.
            calls.append(record.model_copy(update={"error": final}))
            return None, calls, final
        try:
            parsed = cast(M, parse_reply(model, reply))
            if check is not None:
                check(parsed)
        except ValueError as e:
            error = str(e)
            calls.append(record.model_copy(update={"error": error}))
            if attempt == attempts:
                continue
            if reply.finish_reason == "length":
                # Cut off: the same request would be cut again. Ask with more room.
                bigger = more_room(provider, request, reply)
                if bigger <= request.max_tokens:
                    error = (
                        f"the reply was cut off at {request.max_tokens} tokens, "
                        "the most this model has room for"
                    )
                    return None, calls, error
                on_event(
                    Event(
                        kind="retry",
                        section=label,
                        detail=f"cut off at {request.max_tokens} tokens; asking with {bigger}",
                    )
                )
                request = request.model_copy(update={"max_tokens": bigger})
                continue
            on_event(Event(kind="retry", section=label, detail=error))
            request = request.model_copy(update={"messages": reask(prompt, messages, reply, error)})
            continue
        calls.append(record.model_copy(update={"ok": True}))
        return parsed, calls, ""
    return None, calls, error


async def draft_section(
    provider: Provider,
    template: Template,
    section: Section,
    messages: list[Message],
    *,
    max_tokens: int,
    on_event: Progress = quiet,
    cites: bool = False,
) -> SectionDraft:
    """One section: call, validate, ask again once with the error, or fail."""
    prompt = load_prompt(PROMPT_ID)
    model, schema = section_schema(section, cites)
    parsed, calls, error = await structured_call(
        provider,
        prompt,
        model,
        messages,
        label=section.id,
        schema_name=f"section_{section.id}",
        max_tokens=max_tokens,
        json_schema=schema,
        on_event=on_event,
    )
    heading = section_heading(template, section)
    where = f"section {heading!r} (prompt {PROMPT_ID} v{prompt.version})"
    if parsed is not None:
        fit = _fit(provider, schema, max_tokens)
        content = parsed.model_dump()
        content, notes, more = await _uncut(
            provider,
            prompt,
            model,
            section,
            messages,
            content,
            schema=schema,
            fit=fit,
            max_tokens=max_tokens,
            on_event=on_event,
        )
        calls += more
        content, code_notes, more = await repair_code(
            provider,
            template,
            section,
            messages[0],
            content,
            max_tokens=max_tokens,
            on_event=on_event,
        )
        calls += more
        for note in [*notes, *code_notes]:
            on_event(Event(kind="info", section=section.id, detail=note))
        refs = [str(r) for r in content.get("tdd_refs", [])]
        cited = [str(r) for r in content.get("note_refs", [])]
        return SectionDraft(
            section_id=section.id,
            content=content,
            tdd_refs=refs,
            note_refs=cited,
            calls=calls,
            notes=[*notes, *code_notes],
        )
    if (calls and calls[-1].finish_reason in _FINAL) or error.startswith("the model refused"):
        # A refusal or a filter is the model's answer: a larger model is no fix.
        raise SectionFailed(f"{where}: {error}; the request was not asked again", calls)
    if "cut off" in error:
        raise SectionFailed(
            f"{where}: {error}; raise --max-tokens, or lower the section's bounds in the template",
            calls,
        )
    raise SectionFailed(
        f"{where}: the model's reply was not usable after {len(calls)} attempts: {error}; "
        "try a larger model or raise --max-tokens",
        calls,
    )


def _fit(provider: Provider, schema: dict[str, Any], max_tokens: int) -> float:
    """The ratio the provider lowers this schema's string bounds by (1.0: as they are)."""
    budget = schema_budget(provider, max_tokens)
    return 1.0 if budget is None else fit_ratio(schema, budget)


async def _uncut(
    provider: Provider,
    prompt: PromptFile,
    model: type[BaseModel],
    section: Section,
    messages: list[Message],
    content: dict[str, Any],
    *,
    schema: dict[str, Any],
    fit: float,
    max_tokens: int,
    on_event: Progress,
) -> tuple[dict[str, Any], list[str], list[CallRecord]]:
    """`content` with no string stopped at its bound mid-sentence: re-asked once, then trimmed.

    A reply whose strings reached their (fitted) bound without ending is asked
    again once, naming those fields. What is still cut after that goes back to
    its last complete sentence, or is left out with a note (`apply_trims`).
    """
    cuts = find_cuts(section, content, schema, fit)
    if not cuts:
        return content, [], []
    error = cut_message(cuts)
    on_event(
        Event(
            kind="retry",
            section=section.id,
            detail="cut at the length limit: " + ", ".join(c.name for c in cuts),
        )
    )
    previous = Reply(text=json.dumps(content, ensure_ascii=False))
    again, calls, _ = await structured_call(
        provider,
        prompt,
        model,
        reask(prompt, messages, previous, error),
        label=section.id,
        schema_name=f"section_{section.id}",
        max_tokens=max_tokens,
        json_schema=schema,
        on_event=on_event,
    )
    if again is not None:
        content = again.model_dump()
        cuts = find_cuts(section, content, schema, fit)
    content, notes = apply_trims(content, cuts)
    return content, notes, calls


@functools.lru_cache(maxsize=64)
def _repair_model(max_chars: int) -> type[BaseModel]:
    return create_model(
        "RepairedCode",
        __config__=ConfigDict(extra="forbid"),
        code=(str, Field(description="the corrected code only", max_length=max_chars)),
    )


async def repair_code(
    provider: Provider,
    template: Template,
    section: Section,
    system: Message,
    content: dict[str, Any],
    *,
    max_tokens: int,
    on_event: Progress = quiet,
) -> tuple[dict[str, Any], list[str], list[CallRecord]]:
    """Code that does not parse gets one repair call per block; still broken, it is dropped.

    Code parts, and fenced python/json/yaml/toml blocks inside text parts. The
    repair request starts with the section's system message, so the shared
    prefix is reused. A dropped code part keeps its intro, loses its code, and
    carries a `dropped` note the document shows in its place; a dropped block
    in text becomes that note.
    """
    broken = broken_code(section, content)
    if not broken:
        return content, [], []
    prompt = load_prompt(REPAIR_PROMPT_ID)
    notes: list[str] = []
    calls: list[CallRecord] = []
    content = copy.deepcopy(content)
    heading = section_heading(template, section)
    for block in broken:
        part = block.part
        model = _repair_model(part.max_chars)
        schema = model.model_json_schema()
        limit = fitted_length(
            int(schema["properties"]["code"]["maxLength"]), _fit(provider, schema, max_tokens)
        )
        ask = Message(
            role="user",
            content=fill(
                prompt.user,
                language=block.language,
                part_title=part.title,
                section_heading=heading,
                error=block.error,
                code=block.code.strip("\n"),
                limit=str(limit),
            ),
        )
        on_event(
            Event(kind="retry", section=section.id, detail=f"{part.id}: {block.error}; repairing")
        )
        parsed, more, why = await structured_call(
            provider,
            prompt,
            model,
            [system, ask],
            label=f"{section.id}.{part.id}",
            schema_name="repaired_code",
            max_tokens=max_tokens,
            json_schema=schema,
            on_event=on_event,
        )
        calls += more
        fixed = unfence(str(getattr(parsed, "code", ""))).strip("\n") if parsed else ""
        still = code_error(block.language, fixed) if fixed.strip() else (why or "no code")
        if still is None:
            replace_code(content, block, fixed, "")
            notes.append(
                f"{part.id}: the {block.language} code did not parse ({block.error}); repaired"
            )
            continue
        replace_code(
            content,
            block,
            None,
            f"The {block.language} example for {part.title} was left out: the model's code "
            f"did not parse ({block.error}), nor did its repair ({still}).",
        )
        notes.append(f"{part.id}: the {block.language} code did not parse after a repair; dropped")
    return content, notes, calls


class SectionFailed(OutputValidationError):
    """A section whose replies never validated; keeps the calls for the record."""

    def __init__(self, message: str, calls: list[CallRecord]) -> None:
        super().__init__(message)
        self.calls = calls


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

    `checkpoint` loads sections already drafted from the same request and
    saves each new one as soon as it validates. A batch limits calls across
    documents at the provider it passes in (`agent.pipeline.batch`).
    """
    order = [s for s in template.sections if s.id in plan.requests]
    limit = asyncio.Semaphore(max(1, min(concurrency, provider.max_concurrency)))

    async def one(section: Section) -> SectionDraft:
        key = ""
        if checkpoint is not None:
            from agent.draft.checkpoint import draft_key

            key = draft_key(provider, template, section, plan, max_tokens)
            saved = checkpoint.load(section.id, key)
            if saved is not None:
                on_event(
                    Event(kind="done", section=section.id, detail="from checkpoint", resumed=True)
                )
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
                )
            except OutputValidationError as e:
                on_event(Event(kind="failed", section=section.id, detail=str(e)))
                raise
        if checkpoint is not None:
            checkpoint.save(key, draft)
        tokens = sum(c.output_tokens for c in draft.calls)
        costs = [c.cost_usd for c in draft.calls]
        on_event(
            Event(
                kind="done",
                section=section.id,
                detail=f"{tokens} tokens",
                input_tokens=sum(c.input_tokens for c in draft.calls),
                output_tokens=tokens,
                cost_usd=None if None in costs else sum(c or 0.0 for c in costs),
            )
        )
        return draft

    if not order:
        return []
    first = await one(order[0])
    # Let the other sections finish even when one fails, so their calls are
    # recorded and nothing is left running; then report the first failure.
    rest = await asyncio.gather(*(one(s) for s in order[1:]), return_exceptions=True)
    for result in rest:
        if isinstance(result, BaseException):
            raise result
    return [first, *(r for r in rest if isinstance(r, SectionDraft))]
