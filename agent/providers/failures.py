"""One place that turns a failed API call into one line a user can act on, for every vendor.

Each vendor module translates its SDK's exception into an `ApiFailure` (the
status, the API's own message, its error type and code, the request id) and
`describe` words it: the API's text once, the status once, the request id,
and what to do. No SDK is imported here.
"""

from __future__ import annotations

import re
from typing import Literal

import httpx2
from pydantic import BaseModel

from agent.core.errors import ProviderError
from agent.core.redact import redact

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
