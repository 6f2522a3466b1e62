"""The provider protocol: one async call, a typed request in, a typed reply out.

Vendor SDKs live one per module beside this file and are imported only when
a provider is built, so `tidsmith --help` never pays for them. Imports
agent.core only: never a vendor module, an SDK or the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.core.cost import call_cost
from agent.core.models import request_max_tokens
from agent.core.records import CallRecord, Usage
from agent.providers.fitting import fit_schema


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


# How a provider asks for JSON that matches a schema (`--structured`):
# native: the API's own structured output (OpenAI strict json_schema, Anthropic output_config);
# json-schema: OpenAI-protocol json_schema, not strict, bounds fitted to max_tokens (small models
#   on compatible servers, whose grammar enforces every bound);
# grammar: a GBNF grammar in the request (llama.cpp servers);
# json-object: OpenAI JSON mode, the schema in the prompt;
# schema-in-prompt: no structured-output field at all, the schema in the prompt.
StructuredMode = Literal["native", "json-schema", "grammar", "json-object", "schema-in-prompt"]
STRUCTURED_MODES: tuple[StructuredMode, ...] = (
    "native",
    "json-schema",
    "grammar",
    "json-object",
    "schema-in-prompt",
)


class Request(BaseModel):
    """Everything a provider needs for one structured call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prompt_id: str = Field(description="which prompt file built the messages, e.g. draft_section")
    prompt_version: str
    label: str = Field(description="what the call is for, for errors and progress: a section id")
    messages: list[Message]
    schema_name: str
    json_schema: dict[str, Any]
    max_tokens: int = Field(default_factory=request_max_tokens, gt=0)
    temperature: float = 0.2
    # markdown: the reply is markdown that code reads into `json_schema`'s shape
    # (agent.draft.markdown_reply); the request carries no structured-output
    # field and no schema in the prompt, which asks for markdown itself.
    reply_format: Literal["json", "markdown"] = "json"
    # For a markdown reply, a GBNF grammar holding its shape, which llama.cpp
    # servers take under `--structured grammar`; other providers ignore it.
    grammar: str = ""

    @field_validator("messages")
    @classmethod
    def _no_empty_message(cls, messages: list[Message]) -> list[Message]:
        # Anthropic rejects an empty message (400 "all messages must have non-empty
        # content"); no provider is helped by one. Building one is our bug.
        for i, m in enumerate(messages):
            if not m.content.strip():
                raise ValueError(f"message {i} ({m.role}) is empty")
        return messages


class Reply(BaseModel):
    """The raw text the model produced plus what it cost; parsing is the caller's."""

    text: str
    usage: Usage | None = Field(
        default_factory=Usage, description="None: the server did not say (cost unknown)"
    )
    finish_reason: str = "stop"
    refusal: str | None = None
    model: str = ""


@runtime_checkable
class Provider(Protocol):
    """A model endpoint. Implementations map SDK errors to ProviderError."""

    name: str
    model: str
    # How many requests the endpoint serves at once usefully (a CPU server: 1).
    max_concurrency: int
    # Tokens the model can attend to, prompt plus reply.
    context_window: int

    # True when the endpoint has no structured output: the schema goes in the prompt.
    # A property: `--structured auto` may change it when a server refuses a mode.
    @property
    def schema_in_text(self) -> bool: ...

    async def complete(self, request: Request) -> Reply: ...

    async def aclose(self) -> None: ...


class BatchStatus(BaseModel):
    """A provider batch's progress: the vendor's status word and counts of requests."""

    batch_id: str
    status: str
    ended: bool = Field(description="results can be fetched (completed, expired or cancelled)")
    failed: str = Field(default="", description="why the whole batch failed; empty otherwise")
    total: int = 0
    succeeded: int = 0
    errored: int = 0


class BatchItem(BaseModel):
    """One request's outcome: the model's reply, or why there is none."""

    reply: Reply | None = None
    error: str = ""


@runtime_checkable
class BatchProvider(Provider, Protocol):
    """A provider with a batch API (OpenAI, Anthropic)."""

    async def submit_batch(self, requests: Mapping[str, Request]) -> str: ...

    async def batch_status(self, batch_id: str) -> BatchStatus: ...

    async def batch_results(self, batch_id: str) -> dict[str, BatchItem]: ...


# When a server turns out not to support a schema field (`--structured auto` falling
# back), requests planned for one still need the schema: it goes in the prompt,
# worded as prompts/*.yaml `format_in_text` words it.
_SCHEMA_NOTE = "Reply with one JSON object that matches this JSON schema, and nothing else:"


def with_schema_in_text(request: Request) -> Request:
    """`request` with its schema stated in the last user message, unless a message states it
    or the request asks for markdown."""
    if request.reply_format == "markdown":
        return request
    compact = json.dumps(request.json_schema, separators=(",", ":"))
    if any(compact in m.content for m in request.messages):
        return request
    messages = list(request.messages)
    last = max(i for i, m in enumerate(messages) if m.role != "assistant")
    note = f"\n\n{_SCHEMA_NOTE}\n```json\n{compact}\n```"
    messages[last] = Message(role=messages[last].role, content=messages[last].content + note)
    return request.model_copy(update={"messages": messages})


def schema_budget(provider: object, max_tokens: int) -> int | None:
    """The characters `provider` fits a reply's strings into, if it lowers schema bounds.

    Optional for providers (OpenAI-compatible servers have it), so it is read
    with getattr rather than required by the protocol.
    """
    budget = getattr(provider, "schema_budget", None)
    if not callable(budget):
        return None
    chars = budget(max_tokens)
    return chars if isinstance(chars, int) else None


def fitted_schema(provider: object, schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """The schema with the bounds `provider` will enforce on a reply of `max_tokens`.

    The same schema when the provider sends bounds as they are; otherwise
    `fit_schema`'s copy, which the prompt, the cut check and the repair call
    read their numbers from, so they state what the grammar lets through.
    """
    budget = schema_budget(provider, max_tokens)
    return schema if budget is None else fit_schema(schema, budget)


def call_record(
    provider: Provider, request: Request, reply: Reply, *, attempt: int, latency_s: float
) -> CallRecord:
    """The record of one call, not yet marked ok or failed."""
    usage = reply.usage or Usage()
    return CallRecord(
        section=request.label,
        prompt_id=request.prompt_id,
        prompt_version=request.prompt_version,
        attempt=attempt,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        latency_s=round(latency_s, 3),
        cost_usd=call_cost(provider, reply.usage),
        finish_reason=reply.finish_reason,
        ok=False,
    )
