"""The batch's live view on a terminal, its plain-line reporter for logs, and its tables.

The front end of `tidsmith batch`: renders `agent.pipeline.batch` rows with
rich. Nothing below the CLI imports it.
"""

from __future__ import annotations

import time

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table

from agent.core.records import Event, event_line
from agent.core.redact import clean
from agent.pipeline.batch import ACTIVE, BatchResult, DocRow
from agent.pipeline.estimate import DocEstimate


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
        self.tally = Tally()
        self.live = Live(console=console, refresh_per_second=4, get_renderable=self._render)
        self.live.start()

    def _render(self) -> RenderableType:
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
