"""The terminal progress display of `generate` and `eval`: a live status line on a
terminal, plain lines on a pipe, each event worded by `event_line` (agent.core.records).

It imports rich and the core records, so the commands import it only when they run;
it must not import the pipeline.
"""

from __future__ import annotations

from rich.console import Console
from rich.status import Status
from rich.text import Text

from agent.core.records import Event, event_line
from agent.core.redact import clean


class TerminalProgress:
    """Progress on stderr: a live line on a terminal, plain lines otherwise."""

    def __init__(self, sections: list[str], quiet: bool) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.sections = set(sections)
        self.total = len(sections)
        self.finished: set[str] = set()
        self.done = 0
        self.quiet = quiet
        self.status: Status | None = None
        if not quiet and self.console.is_terminal:
            self.status = self.console.status("starting")
            self.status.start()

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        line = self._counted_line(event)
        # Server text (refusals, errors) may carry keys or terminal escape sequences.
        line = clean(line)
        if self.status is not None:
            if event.kind in {"done", "retry", "info"}:
                # Text, not markup: file names and ids hold [...] and :name: codes.
                self.console.log(line, markup=False, emoji=False)
            self.status.update(Text(f"{self.done}/{self.total} sections drafted; {line}"))
        else:
            self.console.print(line, markup=False, emoji=False)

    def _counted_line(self, event: Event) -> str:
        """The event's line, with the section count on a first draft."""
        line = event_line(event)
        if event.kind == "done" and event.section in self.finished:
            line = line.replace(" drafted (", " re-drafted (", 1)
        elif event.kind == "done" and event.section in self.sections:
            self.finished.add(event.section)
            self.done = len(self.finished)
            line = f"[{self.done}/{self.total}] {line}"
        elif event.kind == "done":  # research steps
            line = f"{event.section}: done ({event.detail})" if event.detail else event.section
        return line

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
