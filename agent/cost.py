"""What a call cost, where the price is known (USD per million tokens)."""

from __future__ import annotations

from typing import Protocol

from agent.providers.base import Usage

# (input, cached input, output) per 1M tokens, from the vendors' price pages.
# Unknown models cost None: the run record says "unknown", never a guess.
PRICES: dict[str, tuple[float, float, float]] = {
    "openai:gpt-4.1": (2.00, 0.50, 8.00),
    "openai:gpt-4.1-mini": (0.40, 0.10, 1.60),
    "openai:gpt-4.1-nano": (0.10, 0.025, 0.40),
    "openai:gpt-4o": (2.50, 1.25, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.075, 0.60),
    "anthropic:claude-sonnet-4-6": (3.00, 0.30, 15.00),
    "anthropic:claude-sonnet-4-5": (3.00, 0.30, 15.00),
    "anthropic:claude-haiku-4-5": (1.00, 0.10, 5.00),
    "anthropic:claude-opus-4-1": (15.00, 1.50, 75.00),
}


class _Priced(Protocol):
    name: str
    model: str


def call_cost(provider: _Priced, usage: Usage) -> float | None:
    """USD for one call; 0 for embedded and fake models; None when unknown."""
    if provider.name in {"local", "fake"}:
        return 0.0
    price = PRICES.get(f"{provider.name}:{provider.model}")
    if price is None:
        return None
    fresh = max(0, usage.input_tokens - usage.cached_tokens)
    total = fresh * price[0] + usage.cached_tokens * price[1] + usage.output_tokens * price[2]
    return round(total / 1_000_000, 6)
