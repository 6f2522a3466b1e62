"""The values a generate run is asked for and resolves to: options, recording, the prepared run.

Plain value types shared by the pipeline's stage modules; imports no other
module of `agent.pipeline`, so every stage module may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from agent.core.records import Progress
from agent.core.settings import Settings
from agent.core.tdd import Tdd
from agent.core.templates import Template
from agent.draft.checkpoint import SectionCheckpoint
from agent.providers.base import Provider

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

    from research import ResearchConfig


class Recording(BaseModel):
    """Record this run's HTTP into a cassette, or replay one with no network."""

    path: Path
    mode: Literal["new", "once", "append", "replay"] = "new"


@dataclass(frozen=True)
class GenerateOptions:
    """What `run_generate` was asked for, beside the TDD (its keyword arguments)."""

    settings: Settings
    provider: Provider | None = None
    template: Template | None = None
    out: Path | None = None
    force: bool = False
    safe_names: bool = False
    write: bool = True
    today: str | None = None
    recording: Recording | None = None
    on_event: Progress | None = None
    checkpoint: SectionCheckpoint | None = None
    research: ResearchConfig | None = None
    retrievers: Sequence[BaseRetriever] = ()
    review_appendix: bool = False
    deadline: float | None = None


@dataclass(frozen=True)
class PreparedRun:
    """A run after its cheap checks: the TDD, template and output, settings a replay needs."""

    tdd: Tdd
    template: Template
    path: Path | None  # the document to write; None writes nothing
    out_dir: Path  # where links in the document are relative to
    settings: Settings  # with a replay's recorded model, endpoint and review settings
    today: str  # the header date
    recording: Recording | None
    research: ResearchConfig | None

    @property
    def replay(self) -> bool:
        return self.recording is not None and self.recording.mode == "replay"

    @property
    def records(self) -> bool:
        """Whether this run records a cassette (a record mode, not a replay)."""
        return self.recording is not None and not self.replay

    @property
    def replayed_from(self) -> str | None:
        return str(self.recording.path) if self.replay and self.recording else None
