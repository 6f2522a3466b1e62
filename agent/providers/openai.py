"""OpenAI and every OpenAI-compatible server (llama.cpp, vLLM, Ollama, LM Studio, gateways).

The only module that imports the `openai` SDK.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx2
import openai
from openai.lib._pydantic import _ensure_strict_json_schema  # pyright: ignore[reportPrivateUsage]

from agent.core.errors import ConfigError, ProviderError, is_unrecorded, unrecorded_error
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
from agent.providers.conformance import OPENAI_RULES, openai_strict_problems
from agent.providers.failures import (
    ApiFailure,
    call_site,
    connection_failure,
    describe,
    one_line,
    refuses_structured,
    usage_count,
)
from agent.providers.grammar import char_budget, fit_schema, json_schema_to_gbnf
from agent.providers.retry import (
    CallTimedOut,
    RetryPolicy,
    Transient,
    status_transient,
    with_retries,
)

T = TypeVar("T")
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


class OpenAIProvider:
    """Chat completions with structured output: strict or fitted schema, grammar, JSON mode."""

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
    ) -> None:
        """`fallback`: when a server says it cannot do `structured`, use the next mode."""
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
        mode = self.structured
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
            budget = char_budget(request.max_tokens)
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": fit_schema(request.json_schema, budget),
                    "strict": False,
                },
            }
        elif mode == "grammar":
            budget = char_budget(request.max_tokens)
            body["grammar"] = json_schema_to_gbnf(fit_schema(request.json_schema, budget))
        elif mode == "json-object":
            body["response_format"] = {"type": "json_object"}
        return body

    def schema_budget(self, max_tokens: int) -> int | None:
        """The characters a reply's strings are fitted into, or None when bounds go as is.

        Small models on compatible servers fill every bound: in the fitted modes
        their schema (or grammar) gets lower bounds so the JSON can close within
        max_tokens. The drafting prompt states the same lowered bounds.
        """
        if self.structured in ("grammar", "json-schema"):
            return char_budget(max_tokens)
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
            except _Refused as e:
                mode = self.structured
                nxt = _FALLBACK.get(mode) if self.fallback else None
                if nxt is None:
                    raise describe_failure(e.failure, where) from None
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
        attempts = 0

        async def attempt() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            return await self._post(body)

        try:
            completion = await with_retries(attempt, self.retry, transient, timeout=self.timeout)
        except openai.APIError as e:
            missing = unrecorded_error(e, where, request.prompt_id, request.prompt_version)
            if missing is not None:
                raise missing from None
            failure = failure_of(e, retries=attempts - 1)
            if self.fallback and refuses_structured(failure):
                raise _Refused(failure) from e
            raise describe_failure(failure, where) from e
        except CallTimedOut as e:
            failure = ApiFailure(kind="timeout", message=str(e), retries=attempts - 1)
            raise describe_failure(failure, where) from e
        except (httpx2.TransportError, json.JSONDecodeError) as e:
            failure = ApiFailure(kind="reset", message=type(e).__name__, retries=attempts - 1)
            raise describe_failure(failure, where) from e
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
        batch = await self._batch_call(
            lambda: self._client.batches.retrieve(batch_id), "checking the batch"
        )
        counts = batch.request_counts
        failed = ""
        if batch.status == "failed":
            errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
            failed = "; ".join(one_line(e.message or e.code or "") for e in errors[:3])
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
        custom_id = str(line.get("custom_id", ""))
        response = line.get("response") or {}
        body = response.get("body") or {}
        status = response.get("status_code")
        if line.get("error") or status != 200:
            error = line.get("error") or body.get("error") or {}
            why = one_line(str(error.get("message") or error.get("code") or "no reason given"))
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


class _Refused(Exception):
    """A server said it cannot do the structured-output mode (caught by `complete`)."""

    def __init__(self, failure: ApiFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


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


def _malformed(where: str, why: str) -> ProviderError:
    return describe_failure(ApiFailure(kind="malformed", message=why), where)


def usage_of(stats: Any, where: str) -> Usage | None:
    """A chat completion's `usage`, validated; None when the server did not report it."""
    if stats is None:
        return None
    if not isinstance(stats, dict):
        raise _malformed(where, f"usage is {type(stats).__name__}, not an object")
    details = stats.get("prompt_tokens_details") or {}
    if not isinstance(details, dict):
        raise _malformed(where, "usage.prompt_tokens_details is not an object")
    try:
        return Usage(
            input_tokens=usage_count(stats.get("prompt_tokens"), "prompt_tokens"),
            output_tokens=usage_count(stats.get("completion_tokens"), "completion_tokens"),
            cached_tokens=usage_count(details.get("cached_tokens"), "cached_tokens"),
        )
    except ValueError as e:
        raise _malformed(where, str(e)) from None


def reply_of(completion: Any, model: str, where: str) -> Reply:
    """A chat completion's JSON, live or from a batch output file, as our Reply."""
    if not isinstance(completion, dict):
        raise _malformed(where, f"the body is a JSON {type(completion).__name__}, not an object")
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _malformed(where, "it holds no choices")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _malformed(where, "choices[0] is not an object")
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise _malformed(where, "choices[0].message is not an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise _malformed(where, "choices[0].message.content is not a string")
    refusal = message.get("refusal")
    finish = choice.get("finish_reason")
    return Reply(
        text=content or "",
        usage=usage_of(completion.get("usage"), where),
        finish_reason=finish if isinstance(finish, str) and finish else "stop",
        refusal=refusal if isinstance(refusal, str) and refusal else None,
        model=str(completion.get("model") or model),
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
    if isinstance(e, httpx2.TransportError | json.JSONDecodeError):
        # Reading the body ourselves: a reset or a cut-off body is not wrapped by the SDK.
        return Transient(reason="connection reset or truncated reply body")
    return None


def failure_of(e: openai.APIError, *, retries: int = 0) -> ApiFailure:
    """An SDK error in neutral terms, for `agent.providers.failures.describe`."""
    if isinstance(e, openai.APITimeoutError):
        return ApiFailure(kind="timeout", retries=retries)
    if isinstance(e, openai.APIConnectionError):
        return connection_failure(e, retries=retries)
    if not isinstance(e, openai.APIStatusError):
        return ApiFailure(kind="malformed", message=e.message, retries=retries)
    body = e.body
    message = body.get("message") if isinstance(body, dict) else body
    return ApiFailure(
        kind="status",
        status=e.status_code,
        message=str(message or ""),
        error_type=e.type,
        code=e.code,
        request_id=e.request_id,
        out_of_credit=_no_quota(e),
        retries=retries,
    )


def describe_failure(failure: ApiFailure, where: str) -> ProviderError:
    return describe(failure, where, key_env="OPENAI_API_KEY")


def describe_error(e: openai.APIError, where: str) -> ProviderError:
    """An SDK error as one line after `where`, the call that failed."""
    return describe_failure(failure_of(e), where)
