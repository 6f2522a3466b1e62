"""What a call cost, where the price is known: prices come from the model table.

Which providers are billed at all is the table's `run_defaults`. Imports
agent.core only.
"""

from __future__ import annotations

from typing import Protocol

from agent.core.models import capabilities, run_defaults
from agent.core.records import Usage


class _Priced(Protocol):
    name: str
    model: str


def call_cost(provider: _Priced, usage: Usage | None) -> float | None:
    """USD for one call; 0 for embedded and fake models.

    None when the model has no price in `prompts/models/capabilities.yaml`, or when the
    server did not say what the call used: the run record then says
    "unknown", never a guess, and `--max-cost` treats unknown as a reason to stop.
    """
    if not run_defaults(provider.name).billed:
        return 0.0
    if usage is None:
        return None
    family = capabilities(provider.name, provider.model)
    if family is None or family.price is None:
        return None
    price = family.price
    # Input counts cache reads and writes too (both vendors' usage, in our terms).
    fresh = max(0, usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens)
    total = (
        fresh * price.input
        + usage.cached_tokens * price.cached_input
        + usage.cache_write_tokens * price.cache_write
        + usage.output_tokens * price.output
    )
    return round(total / 1_000_000, 6)


def batch_cost(provider: _Priced, cost: float | None) -> float | None:
    """What a live call's cost becomes when sent through the vendor's batch API."""
    if cost is None or not run_defaults(provider.name).billed:
        return cost
    family = capabilities(provider.name, provider.model)
    if family is None or family.price is None:
        return None
    return round(cost * (1 - family.price.batch_discount), 6)
