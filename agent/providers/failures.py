"""One place that turns a failed API call into one line a user can act on, for every vendor.

A vendor module describes its SDK's exceptions as data (`VendorErrors`: the
exception classes, where a status error keeps its message and code, what
means out of credit); `VendorErrors` translates an exception into an
`ApiFailure` (the status, the API's own message, its error type and code, the
request id), classifies it for retries, and `describe` words it: the API's
text once, the status once, the request id, and what to do. No SDK is imported
here; imports agent.core and agent.providers.retry only.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx2
from pydantic import BaseModel

from agent.core.errors import ProviderError, is_unrecorded, unrecorded_error
from agent.core.redact import redact
from agent.providers.retry import (
    CallTimedOut,
    RetryPolicy,
    Transient,
    status_transient,
    with_retries,
)

T = TypeVar("T")

FailureKind = Literal["status", "connection", "timeout", "reset", "malformed"]

# Terminal control sequences and other control characters a server could send.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


class ApiFailure(BaseModel):
    """What a vendor's error says, in neutral terms."""

    kind: FailureKind
    status: int | None = None
    message: str = ""
    error_type: str | None = None
    code: str | None = None
    request_id: str | None = None
    # Set by the vendor: failures that no wait fixes (an exhausted quota, a spend limit).
    out_of_credit: bool = False
    retries: int = 0


def connection_failure(error: BaseException, *, retries: int) -> ApiFailure:
    """An SDK's connection error: a reset mid-reply is a reset, not "cannot connect"."""
    cause = error.__cause__ or error
    reset = isinstance(cause, httpx2.RemoteProtocolError | httpx2.ReadError)
    return ApiFailure(kind="reset" if reset else "connection", message=str(cause), retries=retries)


def usage_count(value: object, what: str) -> int:
    """A usage count from a reply: a non-negative integer (an integral float counts as one).

    Raises ValueError naming the field: a server that reports nonsense usage
    must not be priced as if it had reported zero.
    """
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"usage.{what} is {type(value).__name__}, not a number")
    if value < 0 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"usage.{what} is {value}, not a non-negative integer")
    return int(value)


def call_site(endpoint: str, prompt_id: str, label: str) -> str:
    """Where a failed call was going and what it was for: a section, or a prompt's task."""
    if prompt_id.endswith("_section"):
        return f"{endpoint}, section {label!r}"
    return f"{endpoint}, {prompt_id.replace('_', ' ')} ({label})"


def one_line(text: str, limit: int = 300) -> str:
    """Server text fit for one terminal line: no secrets, no control sequences, bounded."""
    text = _CONTROL.sub(" ", redact(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _said(failure: ApiFailure) -> str:
    """`(HTTP 400, request req_1): the API's text` — each part once, when there is one."""
    parts = [f"HTTP {failure.status}"] if failure.status is not None else []
    if failure.code:
        parts.append(one_line(failure.code, 60))
    if failure.request_id:
        parts.append(f"request {one_line(failure.request_id, 80)}")
    head = f" ({', '.join(parts)})" if parts else ""
    text = one_line(failure.message)
    return f"{head}: {text}" if text else head


def describe(failure: ApiFailure, where: str, *, key_env: str) -> ProviderError:
    """One line after `where` (the call that failed); `key_env` names the key to check."""
    said = _said(failure)
    after = f" after {failure.retries} retries" if failure.retries else ""
    status = failure.status
    if failure.kind == "timeout":
        return ProviderError(
            f"{where}: no complete reply in time{after}{said}; "
            "raise --timeout, or try a faster model"
        )
    if failure.kind == "reset":
        return ProviderError(
            f"{where}: the connection was reset before the reply was complete{after}{said}; "
            "try again, and check the server's logs if it repeats"
        )
    if failure.kind == "connection":
        return ProviderError(
            f"{where}: cannot connect{after}{said}; check the network, or that the server at "
            "--base-url is running"
        )
    if failure.kind == "malformed":
        return ProviderError(
            f"{where}: the server's reply is not a valid chat response{said}; "
            "check --base-url points at an API of this protocol"
        )
    if failure.out_of_credit:
        return ProviderError(
            f"{where}: the account is out of quota or credit{said}; "
            f"add credit or raise the limit at the provider, or use another {key_env}"
        )
    if status == 401:
        return ProviderError(f"{where}: the API key was rejected{said}; check {key_env}")
    if status == 403:
        return ProviderError(
            f"{where}: access denied{said}; check that the key's project may use this model"
        )
    if status == 404:
        return ProviderError(f"{where}: not found{said}; check --model and --base-url")
    if status == 429:
        return ProviderError(
            f"{where}: rate limited{after}{said}; lower --concurrency or try again later"
        )
    if status == 529 or failure.error_type == "overloaded_error":
        return ProviderError(
            f"{where}: the API is overloaded{after}{said}; try again in a few minutes"
        )
    if status is not None and status >= 500:
        return ProviderError(f"{where}: the server failed{after}{said}; try again later")
    if status in (400, 413, 422):
        return ProviderError(
            f"{where}: the request was rejected{said}; see docs/providers.md for what "
            "tidsmith sends each model (--structured and --reasoning-effort change it)"
        )
    return ProviderError(f"{where}: the server answered{said}")


def malformed_reply(where: str, why: str) -> ProviderError:
    """A reply that is not the protocol's response (vendor modules parsing one): `why` says how."""
    return describe(ApiFailure(kind="malformed", message=why), where, key_env="")


# What a server says when it cannot do the structured-output field we sent: the
# field's name together with words of refusal. A schema the API finds invalid
# ("Invalid schema for response_format") is our bug, not a missing feature.
_STRUCTURED_FIELDS = re.compile(r"response_format|json_schema|output_config|output_format")
_UNSUPPORTED = re.compile(
    r"not supported|unsupported|not support|unknown|unrecognized|not allowed|not permitted|"
    r"extra (fields|inputs)|not implemented|invalid type",
    re.IGNORECASE,
)


def refuses_structured(failure: ApiFailure) -> bool:
    """True when a server says it cannot do the structured-output mode it was asked for."""
    if failure.kind != "status" or failure.status not in (400, 404, 422, 501):
        return False
    text = failure.message
    if "invalid schema" in text.lower():
        return False
    return bool(_STRUCTURED_FIELDS.search(text) and _UNSUPPORTED.search(text))


class StructuredRefused(Exception):
    """A server said it cannot do the structured-output mode (the provider falls back)."""

    def __init__(self, failure: ApiFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(frozen=True)
class VendorErrors:
    """One SDK's exceptions, as data: everything the vendors differ in when mapping errors."""

    key_env: str  # the environment variable an error about the key names
    base: type[Exception]  # every error the SDK raises
    status: type[Exception]  # an HTTP error status (has status_code, response, type, body)
    connection: type[Exception]  # no (complete) answer; includes the SDK's timeout
    timeout: type[Exception]
    status_message: Callable[[Any], str]  # the API's own text in a status error
    code_of: Callable[[Any], str | None]  # the API's error code in a status error
    out_of_credit: Callable[[Any], bool]  # a status that no wait fixes (quota, spend limit)
    # Errors raised while we read a reply body ourselves, below the SDK (resets, truncation).
    read_errors: tuple[type[Exception], ...] = ()

    def transient(self, e: BaseException) -> Transient | None:
        """Whether an error from one attempt is worth retrying, and after how long."""
        if is_unrecorded(e):
            # A replayed cassette lacks the request: asking again cannot help.
            return None
        if isinstance(e, self.status):
            response: Any = getattr(e, "response")  # noqa: B009 (typed by the SDK, not here)
            status = int(getattr(e, "status_code"))  # noqa: B009
            return status_transient(status, response.headers, permanent=self.out_of_credit(e))
        if isinstance(e, self.connection):
            return Transient(reason=type(e).__name__)
        if isinstance(e, self.read_errors):
            return Transient(reason="connection reset or truncated reply body")
        return None

    def failure_of(self, e: Exception, *, retries: int = 0) -> ApiFailure:
        """An SDK error in neutral terms, for `describe`."""
        if isinstance(e, self.timeout):
            return ApiFailure(kind="timeout", retries=retries)
        if isinstance(e, self.connection):
            return connection_failure(e, retries=retries)
        if not isinstance(e, self.status):
            message = getattr(e, "message", None)
            return ApiFailure(kind="malformed", message=str(message or e), retries=retries)
        error: Any = e
        return ApiFailure(
            kind="status",
            status=error.status_code,
            message=self.status_message(error),
            error_type=error.type,
            code=self.code_of(error),
            request_id=error.request_id,
            out_of_credit=self.out_of_credit(error),
            retries=retries,
        )

    def describe_failure(self, failure: ApiFailure, where: str) -> ProviderError:
        return describe(failure, where, key_env=self.key_env)

    def describe_error(self, e: Exception, where: str) -> ProviderError:
        """An SDK error as one line after `where`, the call that failed."""
        return self.describe_failure(self.failure_of(e), where)

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        policy: RetryPolicy,
        *,
        timeout: float,  # noqa: ASYNC109 (a per-attempt wall-clock bound)
        where: str,
        prompt: tuple[str, str],
        may_refuse: bool = False,
    ) -> T:
        """`attempt` with retries; a failure is raised as one ProviderError line.

        `prompt` (id, version) names what a replayed cassette lacks when it lacks
        the request. With `may_refuse`, a server that cannot do the structured-output
        mode raises StructuredRefused instead, for the provider to fall back.
        """
        attempts = 0

        async def counted() -> T:
            nonlocal attempts
            attempts += 1
            return await attempt()

        try:
            return await with_retries(counted, policy, self.transient, timeout=timeout)
        except CallTimedOut as e:
            failure = ApiFailure(kind="timeout", message=str(e), retries=attempts - 1)
            raise self.describe_failure(failure, where) from e
        except Exception as e:
            if isinstance(e, self.read_errors) and not isinstance(e, self.base):
                failure = ApiFailure(kind="reset", message=type(e).__name__, retries=attempts - 1)
                raise self.describe_failure(failure, where) from e
            # A replayed cassette refuses unrecorded requests, in the SDK's error
            # types or from inside the HTTP transport, below them.
            missing = unrecorded_error(e, where, *prompt)
            if missing is not None:
                raise missing from None
            if not isinstance(e, self.base):
                raise
            failure = self.failure_of(e, retries=attempts - 1)
            if may_refuse and refuses_structured(failure):
                raise StructuredRefused(failure) from e
            raise self.describe_failure(failure, where) from e

    async def batch_call(
        self,
        call: Callable[[], Awaitable[T]],
        policy: RetryPolicy,
        *,
        timeout: float,  # noqa: ASYNC109 (a per-attempt wall-clock bound)
        where: str,
    ) -> T:
        """One call to a vendor's batch API, retried by `policy`; failures as one line."""
        try:
            return await with_retries(call, policy, self.transient, timeout=timeout)
        except CallTimedOut as e:
            raise ProviderError(f"{where}: {e}; raise --timeout or try again later") from e
        except Exception as e:
            if not isinstance(e, self.base):
                raise
            raise self.describe_error(e, where) from e
