"""Anthropic's Messages API, and Anthropic-compatible servers (llama.cpp's llama-server).

The only module that imports the `anthropic` SDK. Imports agent.core and
agent.providers modules only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import anthropic
import httpx2

from agent.core.errors import ConfigError
from agent.core.models import ModelFamily, capabilities, run_defaults
from agent.core.records import Usage
from agent.core.redact import redact
from agent.providers.base import (
    BatchItem,
    BatchStatus,
    Reply,
    Request,
    StructuredMode,
    with_schema_in_text,
)
from agent.providers.conformance import ANTHROPIC_RULES, anthropic_problems
from agent.providers.failures import (
    StructuredRefused,
    VendorErrors,
    call_site,
    malformed_reply,
    one_line,
    usage_count,
)
from agent.providers.retry import RetryPolicy

T = TypeVar("T")
log = logging.getLogger(__name__)

ANTHROPIC_MODES: tuple[StructuredMode, ...] = ("native", "schema-in-prompt")

# Anthropic stop reasons in the vocabulary the pipeline checks ("length" = truncated).
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
}


def takes_temperature(model: str) -> bool:
    """Whether to send `temperature`: per the model table; any non-Claude server model does."""
    family = capabilities("anthropic", model)
    if family is None:
        return not model.startswith("claude-")
    return family.temperature


def output_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pydantic JSON schema in the subset Anthropic's structured outputs accept.

    The SDK's own transform sets `additionalProperties: false` on every object
    and moves what the API rejects (`maxLength`, `maxItems`, `minItems` > 1,
    numeric bounds, unknown string formats) into the field's description, so the
    model still reads the bound; our pydantic validation enforces it afterwards.
    It does not modify its argument. A schema that still breaks a published
    rule is a ConfigError before anything is sent.
    """
    transformed = anthropic.transform_schema(schema)
    problems = anthropic_problems(transformed)
    if problems:
        raise ConfigError(
            f"Anthropic structured outputs cannot take this schema: {problems[0]} "
            f"({ANTHROPIC_RULES}); simplify the template, or pass --structured schema-in-prompt"
        )
    return transformed


def _out_of_credit(e: anthropic.APIStatusError) -> bool:
    # Billing failures arrive as 402, as 429 with a spend-limit code, or as a 400
    # whose message says the credit balance is too low; none is fixed by waiting.
    if isinstance(e, anthropic.PaymentRequiredError) or e.type == "billing_error":
        return True
    if "spend_limit" in (e.error_code or ""):
        return True
    return "credit balance" in (e.api_message or "").lower()


def _status_message(e: anthropic.APIStatusError) -> str:
    body = e.body
    return str(e.api_message or (body if isinstance(body, str) else "") or "")


ERRORS = VendorErrors(
    key_env="ANTHROPIC_API_KEY",
    base=anthropic.AnthropicError,
    status=anthropic.APIStatusError,
    connection=anthropic.APIConnectionError,
    timeout=anthropic.APITimeoutError,
    status_message=_status_message,
    code_of=lambda e: e.error_code,
    out_of_credit=_out_of_credit,
)


class AnthropicProvider:
    """Messages API with native structured output, or the schema in the prompt."""

    name = "anthropic"
    errors = ERRORS

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        structured: StructuredMode = "native",
        fallback: bool = False,
        max_concurrency: int | None = None,
        context_window: int | None = None,
        timeout: float = 600.0,
        max_retries: int = 2,
        http_client: httpx2.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Build the client; `http_client` (an `httpx2.AsyncClient`) is for tests and proxies.

        `fallback`: when a server says it cannot do structured output, put the
        schema in the prompt instead (llama.cpp's /v1/messages drops it silently:
        pass `--structured schema-in-prompt` for such servers).
        """
        if structured not in ANTHROPIC_MODES:
            raise ConfigError(
                f"--structured {structured} is not an Anthropic mode; use native or "
                "schema-in-prompt"
            )
        self.model = model
        self.family: ModelFamily | None = capabilities("anthropic", model)
        defaults = run_defaults("anthropic")
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
        self.base_url = base_url
        self.label = (
            f"anthropic:{model}" if base_url is None else f"anthropic:{model} at {redact(base_url)}"
        )
        self.timeout = timeout
        # We retry ourselves (see agent.providers.retry): the SDK would also retry
        # a spend limit, and its read timeout misses a trickling server.
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        # The key goes to the SDK client only; it is never stored elsewhere.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=http_client,
        )

    @property
    def schema_in_text(self) -> bool:
        return self.structured == "schema-in-prompt"

    def room(self, request: Request, reply: Reply) -> int:
        """The largest reply limit a retry of `request` could ask for."""
        used = reply.usage.input_tokens if reply.usage is not None else 0
        return max(0, min(self.max_output_tokens, self.context_window - used))

    def message_kwargs(self, request: Request) -> dict[str, Any]:
        """The `messages.create` arguments for one request (see `batch_params` for batches)."""
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [
                {"role": m.role, "content": m.content}
                for m in request.messages
                if m.role != "system"
            ],
        }
        if takes_temperature(self.model):
            # anthropic 2.x's create() has no `temperature`; extra_body puts it in the body.
            kwargs["extra_body"] = {"temperature": request.temperature}
        if system:
            # One breakpoint after system + TDD: every section call shares that prefix,
            # so all but the first read it from the cache at a tenth of the price.
            kwargs["system"] = [
                {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
            ]
        if self.structured == "native" and request.reply_format == "json":
            kwargs["output_config"] = {
                "format": {"type": "json_schema", "schema": output_schema(request.json_schema)}
            }
        return kwargs

    async def complete(self, request: Request) -> Reply:
        where = call_site(self.label, request.prompt_id, request.label)
        while True:
            sent = with_schema_in_text(request) if self.schema_in_text else request
            kwargs = self.message_kwargs(sent)
            try:
                message = await self.errors.call(
                    lambda kwargs=kwargs: self._client.messages.create(**kwargs),
                    self.retry,
                    timeout=self.timeout,
                    where=where,
                    prompt=(request.prompt_id, request.prompt_version),
                    may_refuse=self.fallback and self.structured == "native",
                )
            except StructuredRefused as e:
                log.warning(
                    "%s cannot do structured output (%s); the schema goes in the prompt",
                    self.label,
                    one_line(e.failure.message, 120),
                )
                self.structured = "schema-in-prompt"
                continue
            return reply_of(message, self.model, where)

    async def aclose(self) -> None:
        await self._client.close()

    # ---- Message Batches: the same params per request, answered within 24 h ----

    def batch_params(self, request: Request) -> dict[str, Any]:
        """`message_kwargs` as one batch request's params: `extra_body` merges into them."""
        kwargs = self.message_kwargs(request)
        params = {k: v for k, v in kwargs.items() if k != "extra_body"}
        params.update(kwargs.get("extra_body") or {})
        return params

    async def submit_batch(self, requests: Mapping[str, Request]) -> str:
        """Start one Message Batch with a request per custom_id; returns its id."""
        batch = [{"custom_id": cid, "params": self.batch_params(r)} for cid, r in requests.items()]
        if len(batch) > BATCH_MAX_REQUESTS:
            raise ConfigError(
                f"{len(batch)} requests are more than one Message Batch takes "
                f"({BATCH_MAX_REQUESTS}); run the batch on fewer TDDs (--glob)"
            )
        # Not retried: a create whose answer was lost may still have started a
        # batch, and a second one would be paid for twice.
        created = await self._batch_call(
            lambda: self._client.messages.batches.create(requests=cast(Any, batch)),
            "creating the batch",
            retry=False,
        )
        return created.id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Where the batch stands, in counts of requests."""
        batch = await self._batch_call(
            lambda: self._client.messages.batches.retrieve(batch_id), "checking the batch"
        )
        c = batch.request_counts
        return BatchStatus(
            batch_id=batch.id,
            status=batch.processing_status,
            ended=batch.processing_status == "ended",
            total=c.processing + c.succeeded + c.errored + c.canceled + c.expired,
            succeeded=c.succeeded,
            errored=c.errored + c.canceled + c.expired,
        )

    async def batch_results(self, batch_id: str) -> dict[str, BatchItem]:
        """Every request's outcome by custom_id: its Reply, or why it has none."""

        async def fetch() -> dict[str, BatchItem]:
            items: dict[str, BatchItem] = {}
            async for line in await self._client.messages.batches.results(batch_id):
                result = line.result
                if result.type == "succeeded":
                    items[line.custom_id] = BatchItem(reply=reply_of(result.message, self.model))
                elif result.type == "errored":
                    error = result.error.error
                    why = one_line(f"{error.type}: {error.message}")
                    items[line.custom_id] = BatchItem(error=why)
                else:
                    items[line.custom_id] = BatchItem(error=f"the request was {result.type}")
            return items

        return await self._batch_call(fetch, "downloading the results")

    async def _batch_call(
        self, call: Callable[[], Awaitable[T]], what: str, *, retry: bool = True
    ) -> T:
        where = f"{self.label}, provider batch ({what})"
        policy = self.retry if retry else RetryPolicy(max_retries=0)
        return await self.errors.batch_call(call, policy, timeout=self.timeout, where=where)


# Anthropic's bound on one Message Batch (it also caps the body at 256 MB).
BATCH_MAX_REQUESTS = 100_000


def reply_of(message: Any, model: str, where: str = "") -> Reply:
    """A Message, live or from a batch's results, as our Reply.

    A reply with no text (a refusal, max_tokens spent thinking, an empty
    end_turn, a tool_use-only answer) keeps its stop reason, so the caller
    can say what happened instead of re-asking with an empty message.
    """
    where = where or f"anthropic:{model}"
    blocks = getattr(message, "content", None)
    if not isinstance(blocks, list):
        raise malformed_reply(where, "the message has no content list")
    text = "".join(
        b.text for b in blocks if getattr(b, "type", None) == "text" and isinstance(b.text, str)
    )
    stop = getattr(message, "stop_reason", None) or "end_turn"
    refusal = None
    if stop == "refusal":
        refusal = text.strip() or "the model declined to answer (stop_reason: refusal)"
    if not text.strip() and stop == "tool_use":
        stop = "tool_use"
    return Reply(
        text=text,
        usage=usage_of(getattr(message, "usage", None), where),
        finish_reason=_FINISH.get(stop, stop),
        refusal=refusal,
        model=str(getattr(message, "model", None) or model),
    )


def usage_of(usage: Any, where: str = "") -> Usage | None:
    """Anthropic's usage in our terms: input counts cache reads and writes, like OpenAI's.

    None when the server sent none: the call's cost is unknown, not zero.
    """
    if usage is None:
        return None
    try:
        read = usage_count(getattr(usage, "cache_read_input_tokens", 0), "cache_read_input_tokens")
        written = usage_count(
            getattr(usage, "cache_creation_input_tokens", 0), "cache_creation_input_tokens"
        )
        fresh = usage_count(getattr(usage, "input_tokens", 0), "input_tokens")
        output = usage_count(getattr(usage, "output_tokens", 0), "output_tokens")
    except ValueError as e:
        raise malformed_reply(where, str(e)) from None
    return Usage(
        input_tokens=fresh + read + written,
        output_tokens=output,
        cached_tokens=read,
        cache_write_tokens=written,
    )
