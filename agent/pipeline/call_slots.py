"""The batch's one limit on model calls in flight, and the provider view that takes it.

A priority semaphore (a document's first calls before the others' fan-out)
and a provider proxy that holds a slot (and checks the budget) for every
call. Imports `agent.pipeline.budget` only, of the pipeline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from agent.core.cost import call_cost
from agent.draft.plan import PROMPT_ID as DRAFT_PROMPT
from agent.pipeline.budget import CostBudget
from agent.providers.base import Provider, Reply, Request


class PrioritySemaphore:
    """The batch's limit on calls in flight; waiting calls go by priority, then arrival.

    A document's first calls (research, then its first section, which warms the
    provider's prefix cache) come before the other documents' section calls:
    each one unlocks a whole document's fan-out, so serving them first keeps
    the slots full to the end instead of leaving a tail of late documents.
    """

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), ready))
        try:
            await ready
        except asyncio.CancelledError:
            if ready.done() and not ready.cancelled():
                # The slot was handed over just as the wait was cancelled: pass it on.
                self.release()
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, ready = heapq.heappop(self._waiting)
            if not ready.done():  # skip waits that were cancelled
                ready.set_result(None)
                return
        self.free += 1


class SharedLimitProvider:
    """One document's view of the batch's provider: each call holds a slot of the one limit.

    Limiting at the provider, rather than in each stage, covers every call a
    document makes: research and review run their own small fan-outs that
    would otherwise add to the section calls in flight.
    """

    def __init__(
        self, inner: Provider, slots: PrioritySemaphore, budget: CostBudget | None = None
    ) -> None:
        self.inner = inner
        self.slots = slots
        self.budget = budget
        self.name = inner.name
        self.model = inner.model
        self.max_concurrency = inner.max_concurrency
        self.context_window = inner.context_window
        self.schema_in_text = inner.schema_in_text
        self.started = False  # a section call has finished: the rest can fan out

    def __getattr__(self, name: str) -> object:
        # Optional provider attributes (default_max_tokens) read through.
        return getattr(self.inner, name)

    async def complete(self, request: Request) -> Reply:
        await self.slots.acquire(1 if self.started else 0)
        try:
            if self.budget is not None:
                self.budget.check()
            reply = await self.inner.complete(request)
            if self.budget is not None:
                # Metered as made: a server reporting large usage stops the batch
                # within one call (per slot) of --max-cost, not one document.
                self.budget.spend(call_cost(self.inner, reply.usage))
            return reply
        finally:
            self.slots.release()
            if request.prompt_id == DRAFT_PROMPT:
                self.started = True

    async def aclose(self) -> None:
        await self.inner.aclose()
