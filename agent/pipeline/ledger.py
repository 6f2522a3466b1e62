"""Every call a run makes, recorded as it returns, so that a failed run still knows its spend.

Stages keep their own call records for the run record of a finished run; the
ledger is what a run that fails, is interrupted or passes its deadline writes
instead: every request the provider sent, with the tokens and cost it reported.
Imports no other module of `agent.pipeline`.
"""

from __future__ import annotations

import time
from typing import Any

from agent.core.errors import TidsmithError
from agent.core.records import CallRecord
from agent.core.redact import redact
from agent.providers.base import Provider, Reply, Request, call_record


class Ledger:
    """A provider that forwards to another and records each call's outcome."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.max_concurrency = inner.max_concurrency
        self.context_window = inner.context_window
        self.records: list[CallRecord] = []
        self._attempts: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        # Optional capabilities (schema_budget, room, default_max_tokens...) are the inner's.
        return getattr(self.inner, name)

    @property
    def schema_in_text(self) -> bool:
        return self.inner.schema_in_text

    async def complete(self, request: Request) -> Reply:
        attempt = self._attempts.get(request.label, 0) + 1
        self._attempts[request.label] = attempt
        started = time.perf_counter()
        try:
            reply = await self.inner.complete(request)
        except TidsmithError as e:
            # The server answered with an error (or not at all): nothing billed is known.
            self.records.append(
                CallRecord(
                    section=request.label,
                    prompt_id=request.prompt_id,
                    prompt_version=request.prompt_version,
                    attempt=attempt,
                    input_tokens=0,
                    output_tokens=0,
                    cached_tokens=0,
                    latency_s=round(time.perf_counter() - started, 3),
                    cost_usd=0.0,
                    finish_reason="error",
                    ok=False,
                    error=redact(str(e))[:500],
                )
            )
            raise
        record = call_record(
            self.inner,
            request,
            reply,
            attempt=attempt,
            latency_s=time.perf_counter() - started,
        )
        self.records.append(record.model_copy(update={"ok": True}))
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()
