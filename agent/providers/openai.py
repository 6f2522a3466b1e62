"""OpenAI and every OpenAI-compatible server (llama.cpp, vLLM, Ollama, LM Studio).

The only module that imports the `openai` SDK.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx2
import openai

from agent.errors import ConfigError, ProviderError, is_unrecorded, unrecorded_error
from agent.providers.base import Reply, Request, Usage
from agent.providers.grammar import char_budget, fit_schema, json_schema_to_gbnf
from agent.providers.retry import (
    CallTimedOut,
    RetryPolicy,
    Transient,
    status_transient,
    with_retries,
)
from agent.redact import redact

if TYPE_CHECKING:
    from agent.provider_batch import BatchItem, BatchStatus

T = TypeVar("T")

StructuredMode = Literal["json_schema", "grammar", "json_object"]

# Keywords OpenAI's strict structured outputs reject; our pydantic validation
# still enforces them after the reply arrives.
_STRICT_UNSUPPORTED = ("maxLength", "minLength", "title", "default")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pydantic JSON schema in the subset OpenAI's strict mode accepts."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items() if k not in _STRICT_UNSUPPORTED}
            if out.get("type") == "object" and "properties" in out:
                out["additionalProperties"] = False
                out["required"] = list(out["properties"])
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(copy.deepcopy(schema))


class OpenAIProvider:
    """Chat completions with structured output, by schema, grammar or JSON mode."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        structured: StructuredMode = "json_schema",
        max_concurrency: int = 8,
        context_window: int = 128_000,
        timeout: float = 600.0,
        max_retries: int = 2,
        name: str = "openai",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.max_concurrency = max_concurrency
        self.context_window = context_window
        self.structured: StructuredMode = structured
        self.base_url = base_url
        self.schema_in_text = structured == "json_object"
        self.label = f"{name}:{model}" if base_url is None else f"{name}:{model} at {base_url}"
        self.timeout = timeout
        # We retry ourselves (see agent.providers.retry): the SDK would also retry
        # an exhausted quota, and its read timeout misses a trickling server.
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        # The key goes to the SDK client only; it is never stored elsewhere.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    def chat_body(self, request: Request) -> dict[str, Any]:
        """The chat-completions JSON body for one request.

        `complete` posts it, and each provider batch line carries it unchanged,
        so a batched section is byte for byte the request a live one would be.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        budget = self.schema_budget(request.max_tokens)
        if self.structured == "json_schema":
            schema = (
                strict_schema(request.json_schema)
                if budget is None
                else fit_schema(request.json_schema, budget)
            )
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": schema,
                    "strict": self.base_url is None,
                },
            }
        elif budget is not None:  # grammar
            body["grammar"] = json_schema_to_gbnf(fit_schema(request.json_schema, budget))
        else:
            body["response_format"] = {"type": "json_object"}
        return body

    def schema_budget(self, max_tokens: int) -> int | None:
        """The characters a reply's strings are fitted into, or None when bounds go as is.

        Compatible servers often run small models that fill every bound: their
        schema (or grammar) gets lower bounds so the JSON can close within
        max_tokens. The drafting prompt states the same lowered bounds.
        """
        if self.structured == "grammar" or (
            self.structured == "json_schema" and self.base_url is not None
        ):
            return char_budget(max_tokens)
        return None

    async def complete(self, request: Request) -> Reply:
        body = self.chat_body(request)
        where = f"{self.label}, section {request.label!r}"
        try:
            completion = await with_retries(
                lambda: self._post(body),
                self.retry,
                transient,
                timeout=self.timeout,
            )
        except openai.APIError as e:
            raise map_error(e, self.label, request) from e
        except CallTimedOut as e:
            raise ProviderError(
                f"{where}: {e} (after {self.retry.max_retries} retries); "
                "raise --timeout or use a faster model"
            ) from e
        except json.JSONDecodeError as e:
            raise ProviderError(
                f"{where}: the server's reply was not complete JSON (after "
                f"{self.retry.max_retries} retries); check --base-url and the server's logs"
            ) from e
        except Exception as e:
            # A replayed cassette refuses unrecorded requests from inside the
            # HTTP transport, below the SDK's own error types.
            missing = unrecorded_error(e, where, request.prompt_id, request.prompt_version)
            if missing is None:
                raise
            raise missing from None
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

    # ---- OpenAI Batch API: a JSONL file of chat-completion bodies, answered within 24 h ----

    async def submit_batch(self, requests: Mapping[str, Request]) -> str:
        """Upload one JSONL line per request and start a batch over them; returns its id."""
        lines = [
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": BATCH_ENDPOINT,
                    "body": self.chat_body(request),
                }
            )
            for custom_id, request in requests.items()
        ]
        data = ("\n".join(lines) + "\n").encode()
        if len(lines) > BATCH_MAX_REQUESTS or len(data) > BATCH_MAX_BYTES:
            raise ConfigError(
                f"{len(lines)} requests ({len(data) / 1e6:.0f} MB) are more than one OpenAI "
                f"batch takes ({BATCH_MAX_REQUESTS} requests, {BATCH_MAX_BYTES // 10**6} MB); "
                "run the batch on fewer TDDs (--glob)"
            )
        upload = await self._batch_call(
            lambda: self._client.files.create(
                file=("tidsmith-batch.jsonl", data, "application/jsonl"), purpose="batch"
            ),
            "uploading the requests",
        )
        # Not retried: a create whose answer was lost may still have started a
        # batch, and a second one would be paid for twice.
        batch = await self._batch_call(
            lambda: self._client.batches.create(
                input_file_id=upload.id, endpoint=BATCH_ENDPOINT, completion_window="24h"
            ),
            "creating the batch",
            retry=False,
        )
        return batch.id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Where the batch stands, in counts of requests."""
        from agent.provider_batch import BatchStatus

        batch = await self._batch_call(
            lambda: self._client.batches.retrieve(batch_id), "checking the batch"
        )
        counts = batch.request_counts
        failed = ""
        if batch.status == "failed":
            errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
            failed = "; ".join(redact(e.message or e.code or "") for e in errors[:3])
            failed = failed or "the provider gave no reason"
        return BatchStatus(
            batch_id=batch.id,
            status=batch.status,
            # Expired and cancelled batches still hand back what they finished.
            ended=batch.status in ("completed", "expired", "cancelled"),
            failed=failed,
            total=counts.total if counts is not None else 0,
            succeeded=counts.completed if counts is not None else 0,
            errored=counts.failed if counts is not None else 0,
        )

    async def batch_results(self, batch_id: str) -> dict[str, BatchItem]:
        """Every answered request by custom_id: its Reply, or why it failed."""
        batch = await self._batch_call(
            lambda: self._client.batches.retrieve(batch_id), "checking the batch"
        )
        items: dict[str, BatchItem] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._batch_call(
                lambda file_id=file_id: self._client.files.content(file_id),
                "downloading the results",
            )
            for line in content.text.splitlines():
                if line.strip():
                    custom_id, item = self._batch_line(json.loads(line))
                    items[custom_id] = item
        return items

    def _batch_line(self, line: dict[str, Any]) -> tuple[str, BatchItem]:
        """One line of an output or error file: a 200 holds a chat completion."""
        from agent.provider_batch import BatchItem

        custom_id = str(line.get("custom_id", ""))
        response = line.get("response") or {}
        body = response.get("body") or {}
        status = response.get("status_code")
        if line.get("error") or status != 200:
            error = line.get("error") or body.get("error") or {}
            why = redact(str(error.get("message") or error.get("code") or "no reason given"))
            return custom_id, BatchItem(error=f"{status or 'failed'}: {why[:300]}")
        where = f"{self.label}, batch request {custom_id}"
        try:
            return custom_id, BatchItem(reply=reply_of(body, self.model, where))
        except ProviderError as e:
            return custom_id, BatchItem(error=str(e))

    async def _batch_call(
        self, call: Callable[[], Awaitable[T]], what: str, *, retry: bool = True
    ) -> T:
        where = f"{self.label}, provider batch ({what})"
        policy = self.retry if retry else RetryPolicy(max_retries=0)
        try:
            return await with_retries(call, policy, transient, timeout=self.timeout)
        except openai.APIError as e:
            raise describe_error(e, where) from e
        except CallTimedOut as e:
            raise ProviderError(f"{where}: {e}; raise --timeout or try again later") from e


BATCH_ENDPOINT = "/v1/chat/completions"
# OpenAI's bounds on one batch's input file.
BATCH_MAX_REQUESTS = 50_000
BATCH_MAX_BYTES = 200 * 10**6


def reply_of(completion: Any, model: str, where: str) -> Reply:
    """A chat completion's JSON, live or from a batch output file, as our Reply."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not choices:
        raise ProviderError(
            f"{where}: the server's reply held no choices; check --base-url and its logs"
        )
    choice = choices[0]
    message = choice.get("message") or {}
    usage = Usage()
    if stats := completion.get("usage"):
        details = stats.get("prompt_tokens_details") or {}
        usage = Usage(
            input_tokens=stats.get("prompt_tokens") or 0,
            output_tokens=stats.get("completion_tokens") or 0,
            cached_tokens=details.get("cached_tokens") or 0,
        )
    return Reply(
        text=message.get("content") or "",
        usage=usage,
        finish_reason=choice.get("finish_reason") or "stop",
        refusal=message.get("refusal"),
        model=completion.get("model") or model,
    )


def _no_quota(e: openai.APIStatusError) -> bool:
    return "insufficient_quota" in str(getattr(e, "body", "") or e)


def transient(e: BaseException) -> Transient | None:
    """Whether an error from one attempt is worth retrying, and after how long."""
    if is_unrecorded(e):
        # A replayed cassette lacks the request: asking again cannot help.
        return None
    if isinstance(e, openai.APIStatusError):
        return status_transient(e.status_code, e.response.headers, permanent=_no_quota(e))
    if isinstance(e, openai.APIConnectionError):  # includes the SDK's own timeout
        return Transient(reason=type(e).__name__)
    if isinstance(e, json.JSONDecodeError):
        # The SDK lets a cut-off body through as a raw decode error.
        return Transient(reason="truncated reply body")
    return None


def map_error(e: openai.APIError, label: str, request: Request) -> ProviderError:
    """An SDK error as one line the user can act on."""
    where = f"{label}, section {request.label!r}"
    missing = unrecorded_error(e, where, request.prompt_id, request.prompt_version)
    if missing is not None:
        return missing
    return describe_error(e, where)


def describe_error(e: openai.APIError, where: str) -> ProviderError:
    """An SDK error as one line after `where`, the call that failed."""
    if isinstance(e, openai.AuthenticationError):
        return ProviderError(f"{where}: the API key was rejected (401); check OPENAI_API_KEY")
    if isinstance(e, openai.PermissionDeniedError):
        return ProviderError(f"{where}: access denied (403); check the key's project and model")
    if isinstance(e, openai.NotFoundError):
        return ProviderError(
            f"{where}: model or endpoint not found (404); check --model/--base-url"
        )
    if isinstance(e, openai.RateLimitError):
        if _no_quota(e):
            return ProviderError(
                f"{where}: the account has no quota left (429 insufficient_quota); "
                "add credit at the provider or use another OPENAI_API_KEY"
            )
        return ProviderError(f"{where}: rate limited (429) after retries; lower --concurrency")
    if isinstance(e, openai.APITimeoutError):
        return ProviderError(
            f"{where}: the request timed out; raise --timeout or use a faster model"
        )
    if isinstance(e, openai.APIConnectionError):
        return ProviderError(f"{where}: cannot connect ({redact(str(e))}); is the server running?")
    if isinstance(e, openai.BadRequestError):
        msg = redact(str(e.message))[:300]
        return ProviderError(
            f"{where}: the request was rejected (400): {msg}; check --model, --max-tokens "
            "and that the server supports structured output"
        )
    if isinstance(e, openai.APIStatusError):
        msg = redact(str(e.message))[:300]
        return ProviderError(f"{where}: the server answered {e.status_code}: {msg}")
    return ProviderError(f"{where}: {redact(str(e))[:300]}")
