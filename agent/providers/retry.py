"""Retries for model calls: backoff, Retry-After, and a wall-clock bound per attempt.

The SDKs retry on their own, but they also retry what waiting cannot fix
(429 `insufficient_quota`), their backoff cannot be tuned, and their read
timeout never fires on a server that trickles one byte at a time. So each
provider turns SDK retries off and calls `with_retries` with a classifier
that says which of its errors are transient. Imports nothing of tidsmith
and no SDK.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """How often and how patiently to ask again after a transient failure."""

    max_retries: int = Field(default=2, ge=0, le=20)
    base_s: float = Field(default=0.5, ge=0, description="first backoff; doubles per retry")
    cap_s: float = Field(default=8.0, ge=0, description="longest backoff without Retry-After")
    # A server asking for longer than this is treated as asking for this long.
    max_retry_after_s: float = Field(default=60.0, ge=0)

    def backoff(self, retry: int) -> float:
        """Seconds before retry number `retry` (0-based), with jitter so clients spread out."""
        return min(self.cap_s, self.base_s * 2**retry) * random.uniform(0.75, 1.0)


class Transient(BaseModel):
    """A failure worth retrying; `retry_after` is the server's own wait, if it gave one."""

    reason: str
    retry_after: float | None = None


class CallTimedOut(Exception):
    """One attempt ran past its wall-clock bound (raised by `with_retries`, mapped by providers)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete reply within {seconds:g}s")
        self.seconds = seconds


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a response asks us to wait: `retry-after-ms`, `retry-after` seconds or date."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


# Statuses that waiting can fix: timeout, conflict, rate limit, server errors, overload.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def status_transient(
    status: int, headers: Mapping[str, str] | None, *, permanent: bool = False
) -> Transient | None:
    """An HTTP error status as a Transient, or None when waiting cannot fix it.

    `permanent` marks what the status alone hides: a 429 for an exhausted quota.
    """
    if status not in RETRY_STATUS or permanent:
        return None
    return Transient(reason=f"HTTP {status}", retry_after=retry_after(headers))


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    classify: Callable[[BaseException], Transient | None],
    *,
    timeout: float | None,  # noqa: ASYNC109 (a per-attempt wall-clock bound, not the caller's)
) -> T:
    """Run `attempt` until it succeeds, fails for good, or the retries run out.

    Each attempt is bounded by `timeout` seconds of wall clock (a timed-out
    attempt raises CallTimedOut, which counts as transient). The last error is
    raised as is, for the provider to map into one line.
    """
    retry = 0
    while True:
        try:
            if timeout is None:
                return await attempt()
            try:
                async with asyncio.timeout(timeout):
                    return await attempt()
            except TimeoutError:
                raise CallTimedOut(timeout) from None
        except Exception as e:
            transient = (
                Transient(reason="timed out") if isinstance(e, CallTimedOut) else classify(e)
            )
            if transient is None or retry >= policy.max_retries:
                raise
            wait = policy.backoff(retry)
            if transient.retry_after is not None:
                wait = min(transient.retry_after, policy.max_retry_after_s)
            log.info("retrying in %.2fs: %s", wait, transient.reason)
            retry += 1
            await asyncio.sleep(wait)
