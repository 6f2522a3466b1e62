"""Structured calls: one request, its reply parsed and validated, asked again once by cause.

The engine every model-calling stage uses (sections, research, review, update,
chat intent). Imports core, document and providers, and the prompt files;
never section drafting, a later stage or a front end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from agent.core.records import CallRecord, Event, Progress, quiet
from agent.document.assemble import unfence
from agent.draft.prompting import PromptFile, fill
from agent.providers.base import Message, Provider, Reply, Request, call_record


def _answer(reply: Reply) -> str:
    """The reply's text, stripped; ValueError for a refusal or an empty reply."""
    if reply.refusal:
        raise ValueError(f"the model refused: {reply.refusal[:200]}")
    text = reply.text.strip()
    if not text:
        raise ValueError(f"the reply was empty (finish_reason: {reply.finish_reason})")
    return text


def _validated(model: type[BaseModel], data: Any, what: str) -> BaseModel:
    """`data` as `model`, or ValueError naming the first `what` (field, part) that is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise ValueError(f"{what} {loc}: {first['msg']} ({e.error_count()} problems)") from e


def parse_reply(model: type[BaseModel], reply: Reply) -> BaseModel:
    """The reply as a validated model, or ValueError saying what is wrong."""
    text = _answer(reply)
    if text.endswith(("```", "~~~")):
        inner = unfence(text).strip()
        if not inner.endswith(("```", "~~~")):
            # A reply wrapped whole in a closed fence: the JSON inside it.
            text = inner
    if not text.startswith("{") and "{" in text:
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
    return _validated(model, data, "field")


def read_reply(model: type[BaseModel], reply: Reply, markdown: MarkdownReply) -> BaseModel:
    """A markdown reply read into the model's fields and validated, or ValueError."""
    _answer(reply)
    try:
        data = markdown.read(reply.text)
    except ValueError as e:
        if reply.finish_reason == "length":
            raise ValueError(f"the reply was cut off at max_tokens: {e}") from e
        raise
    return _validated(model, data, "part")


# Finish reasons no re-ask can fix: the same request would be refused or filtered again.
FINAL_FINISH_REASONS = {
    "refusal": "the model refused to answer",
    "content_filter": "the provider's content filter stopped the reply",
}


def final_cause(reply: Reply) -> str | None:
    """Why a reply is final and unusable (a refusal, a content filter), or None."""
    if reply.refusal:
        return f"the model refused to answer: {' '.join(reply.refusal.split())[:200]}"
    return FINAL_FINISH_REASONS.get(reply.finish_reason)


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


def _next_request(
    provider: Provider,
    prompt: PromptFile,
    messages: list[Message],
    request: Request,
    reply: Reply,
    error: str,
    on_event: Progress,
) -> Request | str:
    """The request to ask again with after an unusable reply, or why asking cannot help."""
    if reply.finish_reason == "length":
        # Cut off: the same request would be cut again. Ask with more room.
        bigger = more_room(provider, request, reply)
        if bigger <= request.max_tokens:
            return (
                f"the reply was cut off at {request.max_tokens} tokens, "
                "the most this model has room for"
            )
        on_event(
            Event(
                kind="retry",
                section=request.label,
                detail=f"cut off at {request.max_tokens} tokens; asking with {bigger}",
            )
        )
        return request.model_copy(update={"max_tokens": bigger})
    on_event(Event(kind="retry", section=request.label, detail=f"invalid reply: {error}"))
    return request.model_copy(update={"messages": reask(prompt, messages, reply, error)})


def _first_request(
    prompt: PromptFile,
    messages: list[Message],
    label: str,
    schema_name: str,
    json_schema: dict[str, Any],
    max_tokens: int,
    temperature: float | None,
    markdown: MarkdownReply | None,
) -> Request:
    request = Request(
        prompt_id=prompt.id,
        prompt_version=prompt.version,
        label=label,
        messages=messages,
        schema_name=schema_name,
        json_schema=json_schema,
        max_tokens=max_tokens,
    )
    if markdown is not None:
        request = request.model_copy(
            update={"reply_format": "markdown", "grammar": markdown.grammar}
        )
    if temperature is not None:
        request = request.model_copy(update={"temperature": temperature})
    return request


M = TypeVar("M", bound=BaseModel)


def _parsed(model: type[BaseModel], reply: Reply, markdown: MarkdownReply | None) -> BaseModel:
    return parse_reply(model, reply) if markdown is None else read_reply(model, reply, markdown)


@dataclass(frozen=True)
class MarkdownReply:
    """How a call asks for markdown instead of JSON: the grammar holding its shape
    (llama.cpp servers) and the code that reads a reply into the model's fields."""

    grammar: str
    read: Callable[[str], dict[str, Any]]


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
    markdown: MarkdownReply | None = None,
) -> tuple[M | None, list[CallRecord], str]:
    """One structured call, validated, asked again once with the error if the prompt has a retry.

    `check` adds validation beyond the schema (raise ValueError). With
    `markdown`, the reply is markdown its `read` turns into the model's fields.
    Returns the
    validated reply or None, a record per attempt, and the last error. What an
    unusable reply means (fail, fall back, read as unknown) is the caller's.
    """
    schema = json_schema if json_schema is not None else model.model_json_schema()
    request = _first_request(
        prompt, messages, label, schema_name, schema, max_tokens, temperature, markdown
    )
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
            parsed = cast(M, _parsed(model, reply, markdown))
            if check is not None:
                check(parsed)
        except ValueError as e:
            error = str(e)
            calls.append(record.model_copy(update={"error": error}))
            if attempt == attempts:
                continue
            following = _next_request(provider, prompt, messages, request, reply, error, on_event)
            if isinstance(following, str):
                return None, calls, following
            request = following
            continue
        calls.append(record.model_copy(update={"ok": True}))
        return parsed, calls, ""
    return None, calls, error
