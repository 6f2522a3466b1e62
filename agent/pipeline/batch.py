"""Batch: a folder of TDDs into documents, under one limit of in-flight model calls.

One provider serves the whole batch. Documents start while fewer than
`concurrency` are open; every model call of every document (research, section,
review and revision calls alike) takes a slot of one shared semaphore, so the
limit holds across documents and stages together. A document's failure is
recorded on its row and never stops the others. Each validated section is
checkpointed as it completes (`agent.draft.checkpoint`), so a rerun asks only for
what is missing, and a TDD whose finished document was made from the same
TDD, template and model is skipped.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError

from agent.core.cost import call_cost
from agent.core.errors import ConfigError, InputError, TidsmithError
from agent.core.files import os_error, read_bytes
from agent.core.paths import default_output_path, run_record_path
from agent.core.records import Event, RunRecord, Usage, event_line
from agent.core.redact import clean
from agent.core.settings import Settings
from agent.core.tdd import Tdd, load_tdd
from agent.core.templates import Template
from agent.core.tokens import count_tokens
from agent.draft.checkpoint import SectionCheckpoint, checkpoint_folder
from agent.draft.plan import PROMPT_ID as DRAFT_PROMPT
from agent.draft.plan import plan_messages, section_schema
from agent.pipeline.generate import prompt_versions, run_generate
from agent.providers import ProviderShape, default_max_tokens, default_model_id, parse_model_id
from agent.providers.base import Provider, Reply, Request

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from research import ResearchConfig

# The 0xcc convention: `001_FTDD|Name.md`, `000_PTDD|Name.md`.
DEFAULT_GLOB = "[0-9]*TDD*.md"

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


class _Slots:
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


class _Limited:
    """One document's view of the batch's provider: each call holds a slot of the one limit.

    Limiting at the provider, rather than in each stage, covers every call a
    document makes: research and review run their own small fan-outs that
    would otherwise add to the section calls in flight.
    """

    def __init__(self, inner: Provider, slots: _Slots, budget: _Budget | None = None) -> None:
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


class DocEstimate(BaseModel):
    """A dry run's figures for one document: tiktoken counts, before any call."""

    tdd: str
    name: str
    sections: int
    input_tokens: int
    output_tokens: int = Field(description="an upper bound: max_tokens per section call")
    cost_usd: float | None


Update = Callable[[DocRow, Event | None], None]


def find_tdds(folder: Path, glob: str | None = None) -> list[Path]:
    """The TDDs in `folder`, sorted; with no glob, the naming convention, else any `*.md`."""
    try:
        is_dir = folder.is_dir()
    except OSError as e:
        raise os_error(folder, e, "folder") from None
    if not is_dir:
        raise InputError(f"{folder} is not a folder; pass the folder that holds the TDDs")
    if glob is not None:
        found = sorted(p for p in folder.glob(glob) if p.is_file())
        if not found:
            raise InputError(f"no files in {folder} match {glob!r}; check --glob")
        return found
    found = sorted(p for p in folder.glob(DEFAULT_GLOB) if p.is_file())
    found = found or sorted(p for p in folder.glob("*.md") if p.is_file())
    if not found:
        raise InputError(f"no TDDs (*.md files) in {folder}; pass another folder or --glob")
    return found


def expected_model_label(model_id: str | None) -> str:
    """The `provider:model` a run record will name, without opening the provider."""
    provider, name = parse_model_id(model_id or default_model_id())
    if provider == "local":
        from agent.providers.local import replay_identity

        return f"local:{replay_identity(name or 'local')[0]}"
    return f"{provider}:{name or provider}"


def is_current(output: Path, tdd: Tdd, template: Template, model: str) -> bool:
    """Whether `output` was made from this TDD, template and model (its run record says so)."""
    record_path = run_record_path(output)
    if not output.is_file() or not record_path.is_file():
        return False
    try:
        record = RunRecord.model_validate_json(read_bytes(record_path, 64 * 1024 * 1024))
    except (TidsmithError, ValidationError):
        return False
    return (
        record.tdd_sha256 == tdd.sha256
        and (record.template, record.template_version) == (template.name, template.version)
        and record.model == model
        # Every prompt the document was made with is still the current version.
        and _current(record.prompts)
    )


def _current(used: dict[str, str]) -> bool:
    now = prompt_versions()
    return all(now.get(k) == v for k, v in used.items())


def estimate_batch(paths: list[Path], template: Template, settings: Settings) -> list[DocEstimate]:
    """Token and cost estimates for every TDD with tiktoken; no provider is opened.

    Input counts each section call's messages and its schema; output assumes
    every call uses its whole `max_tokens`. Review adds its checklist calls
    (with --review llm) and, as a bound, a re-draft of every section in every
    revision round. The price ignores cache discounts, so the cost is an upper
    bound, retries and research calls aside.
    """
    from agent.pipeline.generate import resolve_review, resolve_revisions
    from agent.review import BATCH_SIZE

    shape = ProviderShape(settings.model)
    max_tokens = settings.max_tokens or default_max_tokens(settings.model)
    review = resolve_review(settings.review, shape)  # type: ignore[arg-type]
    rounds = resolve_revisions(settings.max_revisions, shape) if review != "off" else 0  # type: ignore[arg-type]
    review_calls = (
        -(-len(template.checklist) // BATCH_SIZE) * (1 + rounds) if review == "llm" else 0
    )
    estimates: list[DocEstimate] = []
    for path in paths:
        tdd = load_tdd(path)
        plan = plan_messages(
            template, tdd, shape, max_tokens=max_tokens, schema_in_text=shape.schema_in_text
        )
        drafts = 0
        for section in template.sections:
            if section.id not in plan.requests:
                continue
            schema = section_schema(section, plan.cites)[1]
            drafts += sum(count_tokens(m.content) for m in plan.requests[section.id])
            drafts += count_tokens(str(schema))
        calls = len(plan.requests)
        document = max_tokens * calls  # the drafted document, at most
        # A revision resends the section's messages plus its previous reply.
        inputs = drafts * (1 + rounds) + rounds * document + review_calls * (document + 1000)
        outputs = document * (1 + rounds) + review_calls * min(max_tokens, 1200)
        cost = call_cost(shape, Usage(input_tokens=inputs, output_tokens=outputs))
        estimates.append(
            DocEstimate(
                tdd=str(path),
                name=path.stem,
                sections=len(plan.requests),
                input_tokens=inputs,
                output_tokens=outputs,
                cost_usd=cost,
            )
        )
    return estimates


@dataclass(frozen=True)
class Planned:
    """What a batch does with one TDD: draft it (tdd and output set), or why not."""

    path: Path
    tdd: Tdd | None = None
    output: Path | None = None
    verdict: Literal["draft", "skipped", "failed"] = "draft"
    reason: str = ""


def plan_documents(
    paths: list[Path],
    template: Template,
    *,
    out: Path | None = None,
    force: bool = False,
    safe_names: bool = False,
    resume: bool = True,
    model_label: str | None = None,
) -> list[Planned]:
    """Each TDD's output path and whether it is drafted, skipped or failed.

    An existing document is skipped when it is up to date for `model_label`
    (with `resume`), else it fails unless `force`. With no `model_label`, an
    existing document is never taken as up to date.
    """
    planned: list[Planned] = []
    claimed: dict[Path, str] = {}
    for path in paths:
        try:
            tdd = load_tdd(path)
            output = default_output_path(tdd, template.doc_kind, out, safe_names)
            if tdd.number is None:
                # The next free number may be an earlier unnumbered TDD's of this batch
                # (nothing is written yet): take the one after the highest claimed.
                used = [
                    int(n)
                    for o in claimed
                    if o.parent == output.parent
                    for n in [o.name.split("_", 1)[0]]
                    if n.isdigit()
                ]
                mine = int(output.name.split("_", 1)[0])
                if used and mine <= max(used):
                    numbered = tdd.model_copy(update={"number": f"{max(used) + 1:03d}"})
                    output = default_output_path(numbered, template.doc_kind, out, safe_names)
        except TidsmithError as e:
            planned.append(Planned(path, verdict="failed", reason=clean(str(e))))
            continue
        if output in claimed:
            # Two unnumbered TDDs can be given the same next free number.
            why = f"would write {output.name}, as {claimed[output]} does; number the TDD"
            planned.append(Planned(path, output=output, verdict="failed", reason=why))
            continue
        claimed[output] = path.name
        if output.exists() and not force:
            if resume and model_label and is_current(output, tdd, template, model_label):
                planned.append(Planned(path, output=output, verdict="skipped", reason="up to date"))
            else:
                why = (
                    f"{output.name} exists but was made from another TDD, template or model; "
                    "pass --force to replace it"
                )
                planned.append(Planned(path, output=output, verdict="failed", reason=why))
            continue
        planned.append(Planned(path, tdd=tdd, output=output))
    return planned


class BudgetReached(TidsmithError):
    """--max-cost is spent: the document stops before its next call."""


class _Budget:
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
    model_label = (
        f"{provider.name}:{provider.model}"
        if provider is not None
        else expected_model_label(settings.model)
    )
    rows: list[DocRow] = []
    todo: list[tuple[DocRow, Tdd, Path]] = []
    # Off the event loop: reading every TDD must not hold up Ctrl-C.
    planned = await asyncio.to_thread(
        plan_documents,
        paths,
        template,
        out=out,
        force=force,
        safe_names=safe_names,
        resume=resume,
        model_label=model_label,
    )
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

    budget = _Budget(max_cost)
    if todo and max_cost is not None:
        estimates = estimate_batch([Path(r.tdd) for r, _, _ in todo], template, settings)
        for (row, _, _), est in zip(todo, estimates, strict=True):
            row.estimate_usd = est.cost_usd
            if est.cost_usd is None:
                raise ConfigError(
                    f"no price is known for {model_label}, so --max-cost cannot be enforced; "
                    "drop --max-cost or use a model priced in prompts/models/capabilities.yaml"
                )

    own = provider is None and bool(todo)
    if provider is None and todo:
        from agent.providers import open_provider

        provider = await open_provider(
            settings.model,
            base_url=settings.base_url,
            timeout=settings.timeout,
            structured=settings.structured,
            reasoning_effort=settings.reasoning_effort,
        )
    try:
        if todo and provider is not None:
            await _run_documents(
                todo,
                provider,
                settings,
                template,
                out,
                force,
                safe_names,
                budget,
                deadline_s,
                update,
                research=research,
                review_appendix=review_appendix,
            )
    finally:
        if own and provider is not None:
            await provider.aclose()
    return BatchResult(
        rows=rows, wall_s=round(time.perf_counter() - started, 3), budget_stopped=budget.stopped
    )


async def _run_documents(
    todo: list[tuple[DocRow, Tdd, Path]],
    provider: Provider,
    settings: Settings,
    template: Template,
    out: Path | None,
    force: bool,
    safe_names: bool,
    budget: _Budget,
    deadline_s: float | None,
    update: Update,
    *,
    research: ResearchConfig | None,
    review_appendix: bool,
) -> None:
    limit = max(1, min(settings.concurrency, provider.max_concurrency))
    # One slot per in-flight model call, whichever document and stage it belongs to.
    slots = _Slots(limit)
    # Enough open documents to keep every slot busy while each one's first call
    # runs alone; more would only hold budget reservations earlier than needed.
    documents = asyncio.Semaphore(limit)

    ids = {s.id for s in template.sections}

    async def one(row: DocRow, output: Path) -> None:
        async with documents:
            if not budget.admit(row.estimate_usd):
                row.status, row.reason = "skipped", "budget: --max-cost reached before it started"
                update(row, None)
                return
            update(row, None)
            begun = time.perf_counter()
            checkpoint = SectionCheckpoint(checkpoint_folder(output))

            counted: set[str] = set()

            def on_event(event: Event) -> None:
                stage = _stage(event, ids)
                # Stages only move forward: a revision's re-draft is part of review.
                if stage is not None and ACTIVE.index(stage) > ACTIVE.index(row.status):
                    row.status = stage
                    update(row, None)
                # Progress counts each template section once; research steps and
                # re-drafts are not sections finishing.
                if event.kind == "done" and event.section in ids and event.section not in counted:
                    counted.add(event.section)
                    row.sections_done += 1
                    row.resumed += int(event.resumed)
                    row.input_tokens += event.input_tokens
                    row.output_tokens += event.output_tokens
                    if row.cost_usd is not None:
                        row.cost_usd = (
                            None if event.cost_usd is None else row.cost_usd + event.cost_usd
                        )
                update(row, event)

            try:
                async with asyncio.timeout(deadline_s):
                    doc = await run_generate(
                        Path(row.tdd),
                        settings=settings,
                        provider=_Limited(provider, slots, budget),
                        template=template,
                        # The exact file: numbering a TDD twice could pick another number.
                        out=output,
                        force=force,
                        safe_names=safe_names,
                        on_event=on_event,
                        checkpoint=checkpoint,
                        research=research,
                        review_appendix=review_appendix,
                    )
            except TimeoutError:
                row.status = "failed"
                row.reason = (
                    f"not finished within --deadline {deadline_s:g}s; completed sections "
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
            finally:
                row.wall_s = round(time.perf_counter() - begun, 3)
                budget.settle(row.estimate_usd)
            update(row, None)

    # One document's unexpected error must not cancel the others mid-call; it is
    # raised (a bug, with its traceback) once they have all finished.
    results = await asyncio.gather(
        *(one(row, output) for row, _, output in todo), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _stage(event: Event, sections: set[str]) -> Status | None:
    """The document state an event shows: research, drafting (checkpoints too), review."""
    if event.section == "research":
        return "researching"
    if event.section == "review":
        return "reviewing"
    if event.kind in ("start", "done") and event.section in sections:
        return "drafting"
    return None


# ---- progress and summaries (rich; the CLI picks the view) ----


class Tally:
    """Totals over the rows, and an ETA from the section throughput so far."""

    def __init__(self) -> None:
        self.rows: dict[str, DocRow] = {}
        self.started = time.perf_counter()
        self.fresh = 0  # sections drafted in this run (not loaded from a checkpoint)

    def see(self, row: DocRow, event: Event | None) -> None:
        self.rows[row.tdd] = row
        if event is not None and event.kind == "done" and not event.resumed:
            self.fresh += 1

    def line(self) -> str:
        rows = list(self.rows.values())
        count = {s: sum(r.status == s for r in rows) for s in ("done", "failed", "skipped")}
        tokens = sum(r.input_tokens + r.output_tokens for r in rows)
        costs = [r.cost_usd for r in rows]
        cost = "unknown" if None in costs else f"${sum(c or 0.0 for c in costs):.4f}"
        left = sum(r.sections_total - r.sections_done for r in rows if r.status in ACTIVE)
        eta = "-"
        if self.fresh and left:
            eta = f"{left * (time.perf_counter() - self.started) / self.fresh:.0f}s"
        return (
            f"{count['done']} done, {count['failed']} failed, {count['skipped']} skipped "
            f"of {len(rows)}; {tokens} tokens, {cost}; ETA {eta}"
        )


def _state(row: DocRow) -> str:
    if row.status == "drafting":
        return f"drafting {row.sections_done}/{row.sections_total}"
    if row.status in ("failed", "skipped") and row.reason:
        return f"{row.status}: {row.reason}"
    return row.status


class PlainView:
    """One line per event: for CI logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tally = Tally()

    def __call__(self, row: DocRow, event: Event | None) -> None:
        self.tally.see(row, event)
        if event is None:
            line = f"{row.name}: {_state(row)}"
            if row.status in ("done", "failed"):
                line += f" ({row.wall_s:.1f}s) | {self.tally.line()}"
        elif event.kind == "start":
            return
        elif event.kind == "done":
            how = "from checkpoint" if event.resumed else event.detail
            line = f"{row.name}: {event.section} {row.sections_done}/{row.sections_total} ({how})"
        else:
            line = f"{row.name}: {event_line(event)}"
        self.console.print(clean(line), markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        pass


class LiveView:
    """A live table on a terminal: one row per document, totals and ETA below."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.tally = Tally()
        self.live = Live(console=console, refresh_per_second=4, get_renderable=self._render)
        self.live.start()

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        table.add_column("document", overflow="ellipsis", max_width=48)
        table.add_column("state", overflow="ellipsis", max_width=70)
        table.add_column("tokens", justify="right")
        for row in self.tally.rows.values():
            style = {"done": "green", "failed": "red", "skipped": "dim"}.get(row.status, "")
            table.add_row(
                row.name, _state(row), str(row.input_tokens + row.output_tokens), style=style
            )
        return Group(table, self.tally.line())

    def __call__(self, row: DocRow, event: Event | None) -> None:
        self.tally.see(row, event)

    def stop(self) -> None:
        self.live.stop()


def summary_table(result: BatchResult) -> Table:
    """The end-of-batch table: every document, failures with their one-line reasons."""
    from rich.table import Table

    table = Table(title=f"batch: {len(result.rows)} documents in {result.wall_s:.1f}s")
    for name, justify in [
        ("document", "left"),
        ("status", "left"),
        ("sections", "right"),
        ("tokens in/out", "right"),
        ("cost", "right"),
        ("time", "right"),
        ("reason", "left"),
    ]:
        table.add_column(name, justify=justify, overflow="fold")  # pyright: ignore[reportArgumentType]
    for r in result.rows:
        table.add_row(
            r.name,
            r.status,
            f"{r.sections_done}/{r.sections_total}"
            + (f" ({r.resumed} resumed)" if r.resumed else ""),
            f"{r.input_tokens}/{r.output_tokens}",
            "?" if r.cost_usd is None else f"${r.cost_usd:.4f}",
            f"{r.wall_s:.1f}s",
            r.reason,
        )
    return table


def estimate_table(estimates: list[DocEstimate], model: str) -> Table:
    """The dry run's table, with a total row."""
    from rich.table import Table

    table = Table(title=f"dry run: {model}, nothing sent (output at max_tokens, no cache discount)")
    table.add_column("document", overflow="fold")
    for name in ("sections", "input tokens", "output tokens (max)", "cost (max)"):
        table.add_column(name, justify="right")

    def money(value: float | None) -> str:
        return "unknown price" if value is None else f"${value:.4f}"

    for e in estimates:
        table.add_row(
            e.name, str(e.sections), str(e.input_tokens), str(e.output_tokens), money(e.cost_usd)
        )
    costs = [e.cost_usd for e in estimates]
    table.add_row(
        "total",
        str(sum(e.sections for e in estimates)),
        str(sum(e.input_tokens for e in estimates)),
        str(sum(e.output_tokens for e in estimates)),
        money(None if None in costs else sum(c or 0.0 for c in costs)),
        style="bold",
    )
    return table
