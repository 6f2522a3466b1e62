"""Batch: a folder of TDDs into documents, under one limit of in-flight model calls.

One provider serves the whole batch. Documents start while fewer than
`concurrency` are open; every model call of every document (research, section,
review and revision calls alike) takes a slot of one shared semaphore, so the
limit holds across documents and stages together. A document's failure is
recorded on its row and never stops the others. Each validated section is
checkpointed as it completes (`agent.draft.checkpoint`), so a rerun asks only for
what is missing, and a TDD whose finished document was made from the same
TDD, template and model is skipped. This module schedules; the live view is the
CLI's (`agent.cli.batch_view`). Imports the pipeline's generate run and the
batch's plan, estimate, budget and call slots; never a front end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from agent.core.errors import ConfigError, TidsmithError
from agent.core.records import Event
from agent.core.redact import clean
from agent.core.settings import Settings
from agent.core.tdd import Tdd
from agent.core.templates import Template
from agent.draft.checkpoint import SectionCheckpoint, checkpoint_folder
from agent.pipeline.batch_plan import (
    Planned,
    expected_model_label,
    find_tdds,
    plan_documents,
)
from agent.pipeline.budget import CostBudget
from agent.pipeline.call_slots import PrioritySemaphore, SharedLimitProvider
from agent.pipeline.estimate import DocEstimate, estimate_batch
from agent.pipeline.generate import run_generate
from agent.pipeline.stages import model_label
from agent.providers import open_configured
from agent.providers.base import Provider

if TYPE_CHECKING:
    from research import ResearchConfig

__all__ = [
    "ACTIVE",
    "BatchResult",
    "DocEstimate",
    "DocRow",
    "Status",
    "Update",
    "estimate_batch",
    "expected_model_label",
    "find_tdds",
    "plan_documents",
    "run_batch",
]

Status = Literal["queued", "researching", "drafting", "reviewing", "done", "failed", "skipped"]
# The states of a document that is still being worked on.
ACTIVE: tuple[Status, ...] = ("queued", "researching", "drafting", "reviewing")


class DocRow(BaseModel):
    """One document of the batch, as the progress view and the summary show it."""

    tdd: str
    name: str
    output: str | None = None
    status: Status = "queued"
    reason: str = ""
    sections_total: int = 0
    sections_done: int = 0
    resumed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    estimate_usd: float | None = None
    wall_s: float = 0.0


class BatchResult(BaseModel):
    rows: list[DocRow]
    wall_s: float
    budget_stopped: bool = False

    @property
    def exit_code(self) -> int:
        """1 when any document failed, or the budget stopped the batch before any was done."""
        if any(r.status == "failed" for r in self.rows):
            return 1
        if self.budget_stopped and not any(r.status == "done" for r in self.rows):
            return 1
        return 0


Update = Callable[[DocRow, Event | None], None]

# A document to draft: its row, its TDD and the exact file it writes.
Todo = tuple[DocRow, Tdd, Path]


async def run_batch(
    paths: list[Path],
    *,
    settings: Settings,
    template: Template,
    provider: Provider | None = None,
    out: Path | None = None,
    resume: bool = True,
    force: bool = False,
    safe_names: bool = False,
    max_cost: float | None = None,
    deadline_s: float | None = None,
    on_update: Update | None = None,
    research: ResearchConfig | None = None,
    review_appendix: bool = False,
) -> BatchResult:
    """Generate a document for every TDD in `paths`; never raises for one document's failure.

    Opens one provider (unless given) only if some document needs drafting.
    `max_cost` (USD) admits a document only while spent + in-flight estimates +
    its own estimate stay within it; `deadline_s` bounds each document's run.
    """
    update: Update = on_update or (lambda _r, _e: None)
    started = time.perf_counter()
    label = expected_model_label(settings.model) if provider is None else model_label(provider)
    # Off the event loop: reading every TDD must not hold up Ctrl-C.
    planned = await asyncio.to_thread(
        plan_documents,
        paths,
        template,
        out=out,
        force=force,
        safe_names=safe_names,
        resume=resume,
        model_label=label,
    )
    rows, todo = _rows(planned, template, resume, update)
    budget = CostBudget(max_cost)
    if todo and max_cost is not None:
        _reserve_estimates(todo, template, settings, label)
    if todo:
        async with _batch_provider(provider, settings) as opened:
            batch = BatchDocuments(
                opened,
                settings,
                template,
                budget,
                update,
                force=force,
                safe_names=safe_names,
                deadline_s=deadline_s,
                research=research,
                review_appendix=review_appendix,
            )
            await batch.run(todo)
    return BatchResult(
        rows=rows, wall_s=round(time.perf_counter() - started, 3), budget_stopped=budget.stopped
    )


def _rows(
    planned: list[Planned], template: Template, resume: bool, update: Update
) -> tuple[list[DocRow], list[Todo]]:
    """A row for every TDD (skipped and failed ones settled), and the documents to draft."""
    rows: list[DocRow] = []
    todo: list[Todo] = []
    for p in planned:
        row = DocRow(
            tdd=str(p.path),
            name=p.path.stem,
            sections_total=len(template.sections),
            output=None if p.output is None else str(p.output),
        )
        rows.append(row)
        if p.verdict != "draft":
            row.status, row.reason = p.verdict, p.reason
            if p.verdict == "skipped":
                row.sections_done = row.sections_total
        elif p.tdd is not None and p.output is not None:
            if not resume:
                SectionCheckpoint(checkpoint_folder(p.output)).clear()
            todo.append((row, p.tdd, p.output))
        update(row, None)
    return rows, todo


def _reserve_estimates(
    todo: list[Todo], template: Template, settings: Settings, label: str
) -> None:
    """Put each document's cost estimate on its row; ConfigError when the price is unknown."""
    estimates = estimate_batch([Path(r.tdd) for r, _, _ in todo], template, settings)
    for (row, _, _), est in zip(todo, estimates, strict=True):
        row.estimate_usd = est.cost_usd
        if est.cost_usd is None:
            raise ConfigError(
                f"no price is known for {label}, so --max-cost cannot be enforced; "
                "drop --max-cost or use a model priced in prompts/models/capabilities.yaml"
            )


@asynccontextmanager
async def _batch_provider(given: Provider | None, settings: Settings) -> AsyncIterator[Provider]:
    """The provider given, or one opened for the batch and closed after it."""
    if given is not None:
        yield given
        return
    provider = await open_configured(
        settings,
    )
    try:
        yield provider
    finally:
        await provider.aclose()


@dataclass
class BatchDocuments:
    """The documents of one batch, drafted together through one provider under one limit."""

    provider: Provider
    settings: Settings
    template: Template
    budget: CostBudget
    update: Update
    force: bool
    safe_names: bool
    deadline_s: float | None
    research: ResearchConfig | None
    review_appendix: bool
    # One slot per in-flight model call, whichever document and stage it belongs to.
    slots: PrioritySemaphore = field(init=False)
    # Enough open documents to keep every slot busy while each one's first call
    # runs alone; more would only hold budget reservations earlier than needed.
    open_documents: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        limit = max(1, min(self.settings.concurrency, self.provider.max_concurrency))
        self.slots = PrioritySemaphore(limit)
        self.open_documents = asyncio.Semaphore(limit)

    async def run(self, todo: list[Todo]) -> None:
        """Draft every document; one's unexpected error is raised once all have finished."""
        # One document's unexpected error must not cancel the others mid-call; it is
        # raised (a bug, with its traceback) once they have all finished.
        results = await asyncio.gather(
            *(self.run_document(row, output) for row, _, output in todo), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def run_document(self, row: DocRow, output: Path) -> None:
        """One document, once a place among the open documents and the budget admit it."""
        async with self.open_documents:
            if not self.budget.admit(row.estimate_usd):
                row.status, row.reason = "skipped", "budget: --max-cost reached before it started"
                self.update(row, None)
                return
            self.update(row, None)
            begun = time.perf_counter()
            checkpoint = SectionCheckpoint(checkpoint_folder(output))
            try:
                await self._generate(row, output, checkpoint)
            finally:
                row.wall_s = round(time.perf_counter() - begun, 3)
                self.budget.settle(row.estimate_usd)
            self.update(row, None)

    async def _generate(self, row: DocRow, output: Path, checkpoint: SectionCheckpoint) -> None:
        """Run the pipeline for one document and settle its row: done or failed, and why."""
        try:
            async with asyncio.timeout(self.deadline_s):
                doc = await run_generate(
                    Path(row.tdd),
                    settings=self.settings,
                    provider=SharedLimitProvider(self.provider, self.slots, self.budget),
                    template=self.template,
                    # The exact file: numbering a TDD twice could pick another number.
                    out=output,
                    force=self.force,
                    safe_names=self.safe_names,
                    on_event=RowProgress(row, self.template, self.update),
                    checkpoint=checkpoint,
                    research=self.research,
                    review_appendix=self.review_appendix,
                )
        except TimeoutError:
            row.status = "failed"
            row.reason = (
                f"not finished within --deadline {self.deadline_s:g}s; completed sections "
                "are saved, rerun to finish"
            )
        except TidsmithError as e:
            row.status, row.reason = "failed", clean(str(e))
        else:
            row.status = "done"
            # The record counts every call: research, review and revisions
            # too, which the per-section events do not carry.
            t = doc.record.totals
            row.input_tokens, row.output_tokens, row.cost_usd = (
                t.input_tokens,
                t.output_tokens,
                t.cost_usd,
            )
            checkpoint.clear()


class RowProgress:
    """A document's progress events, counted onto its row: stage, sections, tokens, cost."""

    def __init__(self, row: DocRow, template: Template, update: Update) -> None:
        self.row = row
        self.update = update
        self.sections = {s.id for s in template.sections}
        self.counted: set[str] = set()

    def __call__(self, event: Event) -> None:
        row = self.row
        stage = _stage(event, self.sections)
        # Stages only move forward: a revision's re-draft is part of review.
        if stage is not None and ACTIVE.index(stage) > ACTIVE.index(row.status):
            row.status = stage
            self.update(row, None)
        # Progress counts each template section once; research steps and
        # re-drafts are not sections finishing.
        if (
            event.kind == "done"
            and event.section in self.sections
            and event.section not in self.counted
        ):
            self.counted.add(event.section)
            row.sections_done += 1
            row.resumed += int(event.resumed)
            row.input_tokens += event.input_tokens
            row.output_tokens += event.output_tokens
            if row.cost_usd is not None:
                row.cost_usd = None if event.cost_usd is None else row.cost_usd + event.cost_usd
        self.update(row, event)


def _stage(event: Event, sections: set[str]) -> Status | None:
    """The document state an event shows: research, drafting (checkpoints too), review."""
    if event.section == "research":
        return "researching"
    if event.section == "review":
        return "reviewing"
    if event.kind in ("start", "done") and event.section in sections:
        return "drafting"
    return None
