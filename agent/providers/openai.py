"""OpenAI and every OpenAI-compatible server (llama.cpp, vLLM, Ollama, LM Studio).

The only module that imports the `openai` SDK.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

import openai

from agent.errors import ProviderError, is_unrecorded, unrecorded_error
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

    async def complete(self, request: Request) -> Reply:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if self.structured == "json_schema":
            # Compatible servers often run small models that fill every bound:
            # lower the bounds so the JSON can close within max_tokens.
            schema = (
                strict_schema(request.json_schema)
                if self.base_url is None
                else fit_schema(request.json_schema, char_budget(request.max_tokens))
            )
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": schema,
                    "strict": self.base_url is None,
                },
            }
        elif self.structured == "grammar":
            schema = fit_schema(request.json_schema, char_budget(request.max_tokens))
            kwargs["extra_body"] = {"grammar": json_schema_to_gbnf(schema)}
        else:
            kwargs["response_format"] = {"type": "json_object"}
        where = f"{self.label}, section {request.label!r}"
        try:
            completion = await with_retries(
                lambda: self._client.chat.completions.create(**kwargs),
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
        choice = completion.choices[0]
        usage = Usage()
        if completion.usage is not None:
            details = getattr(completion.usage, "prompt_tokens_details", None)
            usage = Usage(
                input_tokens=completion.usage.prompt_tokens,
                output_tokens=completion.usage.completion_tokens,
                cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            )
        return Reply(
            text=choice.message.content or "",
            usage=usage,
            finish_reason=choice.finish_reason or "stop",
            refusal=getattr(choice.message, "refusal", None),
            model=completion.model or self.model,
        )

    async def aclose(self) -> None:
        await self._client.close()


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
