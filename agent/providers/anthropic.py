"""Anthropic's Messages API, and Anthropic-compatible servers (llama.cpp's llama-server).

The only module that imports the `anthropic` SDK.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import anthropic

from agent.errors import ConfigError, ProviderError, is_unrecorded, unrecorded_error
from agent.providers.base import Reply, Request, Usage
from agent.providers.retry import (
    CallTimedOut,
    RetryPolicy,
    Transient,
    status_transient,
    with_retries,
)
from agent.redact import redact

if TYPE_CHECKING:
    import httpx2

    from agent.provider_batch import BatchItem, BatchStatus

T = TypeVar("T")

StructuredMode = Literal["native", "json_in_text"]

# Anthropic stop reasons in the vocabulary the pipeline checks ("length" = truncated).
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
}

# Anthropic deprecated sampling parameters from Opus 4.7 on: newer Claude models answer
# 400 "temperature is deprecated for this model". These older ones still take it.
_TAKES_TEMPERATURE = re.compile(r"claude-3|claude-(opus|sonnet|haiku)-4(-[0-6])?(-\d{8})?$")


def takes_temperature(model: str) -> bool:
    """Whether to send `temperature`: older Claude models and any non-Claude server model."""
    return not model.startswith("claude-") or _TAKES_TEMPERATURE.match(model) is not None


def output_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pydantic JSON schema in the subset Anthropic's structured outputs accept.

    The SDK's own transform sets `additionalProperties: false` on every object
    and moves what the API rejects (`maxLength`, `maxItems`, `minItems` > 1,
    numeric bounds, unknown string formats) into the field's description, so the
    model still reads the bound; our pydantic validation enforces it afterwards.
    It does not modify its argument.
    """
    return anthropic.transform_schema(schema)


class AnthropicProvider:
    """Messages API with native structured output, or the schema in the prompt."""

    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        structured: StructuredMode = "native",
        max_concurrency: int = 8,
        context_window: int = 200_000,
        timeout: float = 600.0,
        max_retries: int = 2,
        http_client: httpx2.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Build the client; `http_client` (an `httpx2.AsyncClient`) is for tests and proxies."""
        self.model = model
        self.max_concurrency = max_concurrency
        self.context_window = context_window
        self.structured: StructuredMode = structured
        self.base_url = base_url
        # llama-server's /v1/messages drops output_config: the schema must travel in the prompt.
        self.schema_in_text = structured == "json_in_text"
        self.label = (
            f"anthropic:{model}" if base_url is None else f"anthropic:{model} at {base_url}"
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
        if self.structured == "native":
            kwargs["output_config"] = {
                "format": {"type": "json_schema", "schema": output_schema(request.json_schema)}
            }
        return kwargs

    async def complete(self, request: Request) -> Reply:
        kwargs = self.message_kwargs(request)
        where = f"{self.label}, section {request.label!r}"
        try:
            message = await with_retries(
                lambda: self._client.messages.create(**kwargs),
                self.retry,
                transient,
                timeout=self.timeout,
            )
        except anthropic.AnthropicError as e:
            raise map_error(e, self.label, request) from e
        except CallTimedOut as e:
            raise ProviderError(
                f"{where}: {e} (after {self.retry.max_retries} retries); "
                "raise --timeout or use a faster model"
            ) from e
        except Exception as e:
            # A replayed cassette refuses unrecorded requests from inside the
            # HTTP transport, below the SDK's own error types.
            missing = unrecorded_error(e, where, request.prompt_id, request.prompt_version)
            if missing is None:
                raise
            raise missing from None
        return reply_of(message, self.model)

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
        from agent.provider_batch import BatchStatus

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
        from agent.provider_batch import BatchItem

        async def fetch() -> dict[str, BatchItem]:
            items: dict[str, BatchItem] = {}
            async for line in await self._client.messages.batches.results(batch_id):
                result = line.result
                if result.type == "succeeded":
                    items[line.custom_id] = BatchItem(reply=reply_of(result.message, self.model))
                elif result.type == "errored":
                    error = result.error.error
                    why = _one_line(f"{error.type}: {error.message}")
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
        try:
            return await with_retries(call, policy, transient, timeout=self.timeout)
        except anthropic.AnthropicError as e:
            raise describe_error(e, where) from e
        except CallTimedOut as e:
            raise ProviderError(f"{where}: {e}; raise --timeout or try again later") from e


# Anthropic's bound on one Message Batch (it also caps the body at 256 MB).
BATCH_MAX_REQUESTS = 100_000


def reply_of(message: anthropic.types.Message, model: str) -> Reply:
    """A Message, live or from a batch's results, as our Reply."""
    text = "".join(block.text for block in message.content if block.type == "text")
    stop = message.stop_reason or "end_turn"
    refusal = None
    if stop == "refusal":
        refusal = text.strip() or "the model declined to answer (stop_reason: refusal)"
    return Reply(
        text=text,
        usage=usage_of(message.usage),
        finish_reason=_FINISH.get(stop, stop),
        refusal=refusal,
        model=message.model or model,
    )


def usage_of(usage: anthropic.types.Usage) -> Usage:
    """Anthropic's usage in our terms: input counts cache reads and writes, like OpenAI's."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=usage.input_tokens + read + written,
        output_tokens=usage.output_tokens,
        cached_tokens=read,
    )


def _one_line(text: str) -> str:
    return " ".join(redact(text).split())[:300]


def _out_of_credit(e: anthropic.APIStatusError) -> bool:
    # Billing failures arrive as 402, as 429 with a spend-limit code, or as a 400
    # whose message says the credit balance is too low; none is fixed by waiting.
    if isinstance(e, anthropic.PaymentRequiredError) or e.type == "billing_error":
        return True
    if "spend_limit" in (e.error_code or ""):
        return True
    return "credit balance" in (e.api_message or "").lower()


def transient(e: BaseException) -> Transient | None:
    """Whether an error from one attempt is worth retrying, and after how long."""
    if is_unrecorded(e):
        return None
    if isinstance(e, anthropic.APIStatusError):
        return status_transient(e.status_code, e.response.headers, permanent=_out_of_credit(e))
    if isinstance(e, anthropic.APIConnectionError):  # includes the SDK's own timeout
        return Transient(reason=type(e).__name__)
    return None


def map_error(e: anthropic.AnthropicError, label: str, request: Request) -> ProviderError:
    """An SDK error as one line the user can act on."""
    where = f"{label}, section {request.label!r}"
    missing = unrecorded_error(e, where, request.prompt_id, request.prompt_version)
    if missing is not None:
        return missing
    return describe_error(e, where)


def describe_error(e: anthropic.AnthropicError, where: str) -> ProviderError:
    """An SDK error as one line after `where`, the call that failed."""
    if isinstance(e, anthropic.APITimeoutError):
        return ProviderError(
            f"{where}: the request timed out; raise --timeout or use a faster model"
        )
    if isinstance(e, anthropic.APIConnectionError):
        return ProviderError(
            f"{where}: cannot connect ({_one_line(e.message)}); "
            "check the network or --base-url (is the server running?)"
        )
    if not isinstance(e, anthropic.APIStatusError):
        return ProviderError(f"{where}: {_one_line(str(e))}")
    detail = _one_line(e.api_message or e.message)
    if _out_of_credit(e):
        return ProviderError(
            f"{where}: the account is out of credit or over its spend limit ({e.status_code}); "
            "add credit, raise the limit, or use another ANTHROPIC_API_KEY"
        )
    if isinstance(e, anthropic.AuthenticationError):
        return ProviderError(f"{where}: the API key was rejected (401); check ANTHROPIC_API_KEY")
    if isinstance(e, anthropic.PermissionDeniedError):
        return ProviderError(
            f"{where}: access denied (403); check that ANTHROPIC_API_KEY may use this model"
        )
    if isinstance(e, anthropic.NotFoundError):
        return ProviderError(
            f"{where}: model or endpoint not found (404); check --model/--base-url"
        )
    if isinstance(e, anthropic.RateLimitError):
        return ProviderError(f"{where}: rate limited (429) after retries; lower --concurrency")
    if isinstance(e, anthropic.OverloadedError):
        return ProviderError(
            f"{where}: Anthropic is overloaded (529) after retries; try again in a few minutes"
        )
    if isinstance(e, anthropic.BadRequestError):
        return ProviderError(f"{where}: the request was rejected (400): {detail}")
    return ProviderError(f"{where}: the server answered {e.status_code}: {detail}")
