"""The provider protocol: one async call, a typed request in, a typed reply out.

Vendor SDKs live one per module beside this file and are imported only when
a provider is built, so `tidsmith --help` never pays for them.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


class Request(BaseModel):
    """Everything a provider needs for one structured call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prompt_id: str = Field(description="which prompt file built the messages, e.g. draft_section")
    prompt_version: str
    label: str = Field(description="what the call is for, for errors and progress: a section id")
    messages: list[Message]
    schema_name: str
    json_schema: dict[str, Any]
    max_tokens: int = 1500
    temperature: float = 0.2


class Reply(BaseModel):
    """The raw text the model produced plus what it cost; parsing is the caller's."""

    text: str
    usage: Usage = Field(default_factory=Usage)
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
    schema_in_text: bool

    async def complete(self, request: Request) -> Reply: ...

    async def aclose(self) -> None: ...


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
