"""OpenAI and every OpenAI-compatible server (llama.cpp, vLLM, Ollama, LM Studio, gateways).

The only module that imports the `openai` SDK; its Batch API half is
agent.providers.openai_batch, reply parsing agent.providers.openai_reply.
Imports agent.core and agent.providers modules only.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import httpx2
import openai
from openai.lib._pydantic import _ensure_strict_json_schema  # pyright: ignore[reportPrivateUsage]

from agent.core.errors import ConfigError
from agent.core.models import ModelFamily, capabilities, run_defaults
from agent.core.redact import redact
from agent.providers.base import Reply, Request, StructuredMode, with_schema_in_text
from agent.providers.conformance import OPENAI_RULES, openai_strict_problems
from agent.providers.failures import (
    ApiFailure,
    StructuredRefused,
    VendorErrors,
    call_site,
    one_line,
)
from agent.providers.fitting import CHARS_PER_TOKEN, char_budget, fit_schema
from agent.providers.grammar import json_schema_to_gbnf
from agent.providers.openai_batch import (
    BATCH_ENDPOINT,
    BATCH_MAX_BYTES,
    BATCH_MAX_REQUESTS,
    OpenAIBatchAPI,
)
from agent.providers.openai_reply import reply_of
from agent.providers.retry import RetryPolicy

__all__ = [
    "BATCH_ENDPOINT",
    "BATCH_MAX_BYTES",
    "BATCH_MAX_REQUESTS",
    "ERRORS",
    "OPENAI_MODES",
    "OpenAIProvider",
    "reply_of",
    "strict_schema",
]

log = logging.getLogger(__name__)

# What the OpenAI protocol can be asked for, in the order `auto` falls back when a
# server says it cannot do one.
OPENAI_MODES: tuple[StructuredMode, ...] = (
    "native",
    "json-object",
    "schema-in-prompt",
    "json-schema",
    "grammar",
)
_FALLBACK: dict[StructuredMode, StructuredMode] = {
    "native": "json-object",
    "json-object": "schema-in-prompt",
}
# Keywords the strict mode does not document (see agent.providers.conformance); like
# Anthropic's SDK transform, their values move into the description, so the model
# still reads the bound, and our pydantic validation enforces it on the reply.
_MOVED_TO_DESCRIPTION = ("minLength", "maxLength", "default", "uniqueItems", "examples")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not")
_SUBSCHEMA_MAP = ("properties", "$defs", "definitions")
_SUBSCHEMA_LIST = ("anyOf", "allOf", "oneOf", "prefixItems")


def _move_unsupported(node: Any) -> None:
    """Move undocumented keywords into `description`, in every sub-schema (not property names)."""
    if not isinstance(node, dict):
        return
    moved = {k: node.pop(k) for k in _MOVED_TO_DESCRIPTION if k in node}
    if moved:
        note = "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in moved.items()) + "}"
        node["description"] = (
            f"{node['description']}\n\n{note}" if node.get("description") else note
        )
    for key in _SUBSCHEMA_ONE:
        _move_unsupported(node.get(key))
    for key in _SUBSCHEMA_MAP:
        children = node.get(key)
        if isinstance(children, dict):
            for child in children.values():
                _move_unsupported(child)
    for key in _SUBSCHEMA_LIST:
        children = node.get(key)
        if isinstance(children, list):
            for child in children:
                _move_unsupported(child)


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pydantic JSON schema that OpenAI's strict mode accepts.

    The SDK's own conversion (what `.parse()` and `pydantic_function_tool` use)
    closes every object, requires every property and inlines a `$ref` that has
    sibling keywords; then keywords strict mode does not document move into the
    description. Raises ConfigError if the result still breaks a published rule
    (a custom template can ask for what strict mode cannot express). The result
    is shared between calls with the same schema: do not modify it.
    """
    return _strict(json.dumps(schema))


@functools.lru_cache(maxsize=256)
def _strict(schema_json: str) -> dict[str, Any]:
    # Keyed by the schema's text: a batch sends the same few schemas many times,
    # and the conversion and its check cost milliseconds each.
    root = json.loads(schema_json)
    strict = _ensure_strict_json_schema(root, path=(), root=root)
    _move_unsupported(strict)
    problems = openai_strict_problems(strict)
    if problems:
        raise ConfigError(
            f"OpenAI strict mode cannot take this schema: {problems[0]} ({OPENAI_RULES}); "
            "simplify the template, or pass --structured json-object"
        )
    return strict


def _no_quota(e: openai.APIStatusError) -> bool:
    return "insufficient_quota" in str(getattr(e, "body", "") or e)


def _status_message(e: openai.APIStatusError) -> str:
    body = e.body
    message = body.get("message") if isinstance(body, dict) else body
    return str(message or "")


ERRORS = VendorErrors(
    key_env="OPENAI_API_KEY",
    base=openai.APIError,
    status=openai.APIStatusError,
    connection=openai.APIConnectionError,
    timeout=openai.APITimeoutError,
    status_message=_status_message,
    code_of=lambda e: e.code,
    out_of_credit=_no_quota,
    # We read the body ourselves (`_post`): a reset or a cut-off body is not wrapped by the SDK.
    read_errors=(httpx2.TransportError, json.JSONDecodeError),
)


class OpenAIProvider(OpenAIBatchAPI):
    """Chat completions with structured output: strict or fitted schema, grammar, JSON mode."""

    errors = ERRORS

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        structured: StructuredMode = "native",
        fallback: bool = False,
        reasoning_effort: str | None = None,
        max_concurrency: int | None = None,
        context_window: int | None = None,
        timeout: float = 600.0,
        max_retries: int = 2,
        name: str = "openai",
        retry: RetryPolicy | None = None,
        chars_per_token: float = CHARS_PER_TOKEN,
    ) -> None:
        """`fallback`: when a server says it cannot do `structured`, use the next mode.

        `chars_per_token`: the served model's output rate at its low end, which
        sizes the bounds the fitted modes (grammar, json-schema) give a reply.
        """
        if structured not in OPENAI_MODES:
            raise ConfigError(
                f"--structured {structured} is not an OpenAI-protocol mode; use one of "
                + ", ".join(OPENAI_MODES)
            )
        self.name = name
        self.model = model
        # A hosted family (gpt-5.x, o-series...) sets the request shape; a model on a
        # compatible server that the table does not know gets the classic shape.
        self.family: ModelFamily | None = (
            capabilities("openai", model) if name == "openai" else None
        )
        self.reasoning_effort = _effort(self.family, model, reasoning_effort)
        defaults = run_defaults("openai")
        self.default_max_tokens = defaults.max_tokens
        self.max_concurrency = max_concurrency or defaults.max_concurrency
        self.context_window = context_window or (
            self.family.context_window if self.family is not None else defaults.window
        )
        self.max_output_tokens = (
            self.family.max_output_tokens if self.family is not None else self.context_window
        )
        self.structured: StructuredMode = structured
        self.fallback = fallback
        self.chars_per_token = chars_per_token
        self.base_url = base_url
        # Errors name the endpoint; a URL's userinfo or secret query must not ride along.
        self.label = (
            f"{name}:{model}" if base_url is None else f"{name}:{model} at {redact(base_url)}"
        )
        self.timeout = timeout
        # We retry ourselves (see agent.providers.retry): the SDK would also retry
        # an exhausted quota, and its read timeout misses a trickling server.
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        # The key goes to the SDK client only; it is never stored elsewhere.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    @property
    def schema_in_text(self) -> bool:
        """Whether the prompt must carry the schema (the request has no schema field)."""
        return self.structured in ("json-object", "schema-in-prompt")

    def chat_body(self, request: Request) -> dict[str, Any]:
        """The chat-completions JSON body for one request.

        `complete` posts it, and each provider batch line carries it unchanged,
        so a batched section is byte for byte the request a live one would be.
        """
        family = self.family
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in request.messages],
        }
        # gpt-5.x and the o-series reject `max_tokens` and a non-default temperature.
        token_param = family.token_param if family is not None else "max_tokens"
        body[token_param] = request.max_tokens
        if family is None or family.temperature:
            body["temperature"] = request.temperature
        if self.reasoning_effort is not None:
            body["reasoning_effort"] = self.reasoning_effort
        # A markdown reply has no structured-output field: code reads it.
        mode = self.structured if request.reply_format == "json" else None
        if mode == "native":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": strict_schema(request.json_schema),
                    "strict": True,
                },
            }
        elif mode == "json-schema":
            budget = char_budget(request.max_tokens, self.chars_per_token)
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": fit_schema(request.json_schema, budget),
                    "strict": False,
                },
            }
        elif mode == "grammar":
            budget = char_budget(request.max_tokens, self.chars_per_token)
            body["grammar"] = json_schema_to_gbnf(fit_schema(request.json_schema, budget))
        elif mode == "json-object":
            body["response_format"] = {"type": "json_object"}
        elif self.structured == "grammar" and request.grammar:
            body["grammar"] = request.grammar
        return body

    def schema_budget(self, max_tokens: int) -> int | None:
        """The characters a reply's strings are fitted into, or None when bounds go as is.

        Small models on compatible servers fill every bound: in the fitted modes
        their schema (or grammar) gets lower bounds so the JSON can close within
        max_tokens. The drafting prompt states the same lowered bounds.
        """
        if self.structured in ("grammar", "json-schema"):
            return char_budget(max_tokens, self.chars_per_token)
        return None

    def room(self, request: Request, reply: Reply) -> int:
        """The largest reply limit a retry of `request` could ask for."""
        used = reply.usage.input_tokens if reply.usage is not None else 0
        return max(0, min(self.max_output_tokens, self.context_window - used))

    async def complete(self, request: Request) -> Reply:
        where = call_site(self.label, request.prompt_id, request.label)
        while True:
            try:
                return await self._complete(request, where)
            except StructuredRefused as e:
                mode = self.structured
                nxt = _FALLBACK.get(mode) if self.fallback else None
                if nxt is None:
                    raise self.errors.describe_failure(e.failure, where) from None
                # Said once per provider: every later call uses the mode that works.
                self.structured = nxt
                self.log_fallback(mode, nxt, e.failure)

    def log_fallback(self, old: str, new: str, failure: ApiFailure) -> None:
        log.warning(
            "%s cannot do --structured %s (%s); using %s",
            self.label,
            old,
            one_line(failure.message, 120),
            new,
        )

    async def _complete(self, request: Request, where: str) -> Reply:
        # After a fallback, requests planned for a schema field carry the schema in text.
        body = self.chat_body(with_schema_in_text(request) if self.schema_in_text else request)
        completion = await self.errors.call(
            lambda: self._post(body),
            self.retry,
            timeout=self.timeout,
            where=where,
            prompt=(request.prompt_id, request.prompt_version),
            may_refuse=self.fallback,
        )
        return reply_of(completion, self.model, where)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a chat completion body as it is; the reply's JSON as a dict.

        The SDK's typed `create()` walks every parameter (the section schema
        too) against its TypedDicts and builds a typed reply: about 5 ms of CPU
        a call, paid on the critical path of a batch of many small calls. Our
        body is plain JSON already, so it goes through the SDK's documented
        raw `post`, which keeps its auth, error types and connection pool.
        """
        response = await self._client.post("/chat/completions", cast_to=httpx2.Response, body=body)
        # Read inside the caller's timeout: a trickling server is bounded too.
        return json.loads(await response.aread())

    async def aclose(self) -> None:
        await self._client.close()


def _effort(family: ModelFamily | None, model: str, asked: str | None) -> str | None:
    """The reasoning effort to send: the user's, else the family's default, else none."""
    if asked is None:
        return family.default_reasoning_effort if family is not None else None
    if family is not None and asked not in family.reasoning_effort:
        offered = ", ".join(family.reasoning_effort) or "none (it does not reason)"
        raise ConfigError(
            f"--reasoning-effort {asked} is not offered by {model}; it takes: {offered}"
        )
    return asked
