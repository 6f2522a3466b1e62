"""The batch's --max-cost: what is spent and reserved, checked before every call.

Imports no other module of `agent.pipeline`.
"""

from __future__ import annotations

from agent.core.errors import TidsmithError


class BudgetReached(TidsmithError):
    """--max-cost is spent: the document stops before its next call."""


class CostBudget:
    """Spent + reserved (the estimates of documents in flight) against --max-cost."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.spent = 0.0
        self.reserved = 0.0
        self.stopped = False
        self.unknown = False

    def admit(self, estimate: float | None) -> bool:
        if self.limit is None:
            return True
        if (
            self.stopped
            or self.unknown
            or self.spent + self.reserved + (estimate or 0.0) > self.limit
        ):
            # Once one document is refused, start nothing else: the batch stops here.
            self.stopped = True
            return False
        self.reserved += estimate or 0.0
        return True

    def settle(self, estimate: float | None) -> None:
        """A document ended: its reservation goes; what it spent was metered per call."""
        if self.limit is None:
            return
        self.reserved -= estimate or 0.0

    def spend(self, cost: float | None) -> None:
        if self.limit is None:
            return
        if cost is None:
            # A call whose price is unknown cannot be counted: count it as the end.
            self.unknown = True
            return
        self.spent += cost

    def check(self) -> None:
        """Refuse to start a call once the budget is spent (or a cost was unknown)."""
        if self.limit is None:
            return
        if self.unknown or self.spent >= self.limit:
            self.stopped = True
            spent = "an unknown amount" if self.unknown else f"${self.spent:.4f}"
            raise BudgetReached(
                f"budget: --max-cost ${self.limit:g} reached ({spent} spent), no more calls "
                "started; completed sections are saved: rerun with a higher --max-cost"
            )
