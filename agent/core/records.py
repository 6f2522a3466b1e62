"""The values that cross stages: what a call used, what a run did, progress events.

Every layer may import this module; it imports nothing of tidsmith but the
package version, so providers, stages and front ends share these types
without depending on each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.core import __version__


class Usage(BaseModel):
    """Tokens one call used. Input counts cache reads and writes, as both vendors bill them."""

    model_config = ConfigDict(strict=True)

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_tokens: int = Field(default=0, ge=0, description="input read from the prompt cache")
    cache_write_tokens: int = Field(default=0, ge=0, description="input written to the cache")


class CallRecord(BaseModel):
    """One request to the model, as the run record shows it."""

    section: str
    prompt_id: str
    prompt_version: str
    attempt: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int = 0
    latency_s: float
    cost_usd: float | None
    finish_reason: str
    ok: bool
    error: str = ""


class Event(BaseModel):
    kind: Literal["start", "done", "retry", "failed", "info"]
    section: str = ""
    detail: str = ""
    # On "done": what the section's calls used (0 for a section loaded from a checkpoint).
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    resumed: bool = False


Progress = Callable[[Event], None]


def quiet(_: Event) -> None:
    """A Progress that shows nothing."""
    pass


class Totals(BaseModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = 0.0


class RunRecord(BaseModel):
    """What produced a document: model, template and prompt versions, every call."""

    tool_version: str = __version__
    status: Literal["ok", "failed", "interrupted"] = "ok"
    error: str = Field(default="", description="why a run that did not finish stopped")
    model: str
    template: str
    template_version: str
    prompts: dict[str, str]
    tdd_path: str
    tdd_sha256: str
    output_path: str | None = None
    started_at: str
    wall_s: float = 0.0
    shared_prefix: bool = True
    tdd_tokens: int = 0
    calls: list[CallRecord] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)
    replayed_from: str | None = None
    research: dict[str, Any] | None = Field(
        default=None, description="notes, sources, failures; None when research was off"
    )
    review: str = "off"
    review_scores: dict[str, float] = Field(default_factory=dict)
    section_notes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per section: text trimmed back to its last sentence, code repaired or dropped",
    )


def totals(calls: list[CallRecord]) -> Totals:
    costs = [c.cost_usd for c in calls]
    return Totals(
        calls=len(calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        cached_tokens=sum(c.cached_tokens for c in calls),
        cost_usd=None if any(c is None for c in costs) else round(sum(c or 0.0 for c in costs), 6),
    )


def event_line(event: Event) -> str:
    """One line of text for a progress event; front ends add counters and document names.

    The one wording of progress across the terminal, batch and chat, so a message
    reads the same wherever a run is watched.
    """
    section = event.section
    if event.kind == "start":
        return f"drafting {section}"
    if event.kind == "retry":
        # The detail says why: an invalid reply, a cut, code that does not parse.
        return f"{section}: asking again ({event.detail})"
    if event.kind == "failed":
        return f"{section}: {event.detail or 'failed'}" if section else event.detail
    if event.kind == "done":
        how = "from checkpoint" if event.resumed else event.detail
        return f"{section} drafted ({how})" if how else f"{section} drafted"
    return f"{section}: {event.detail}" if section else event.detail
