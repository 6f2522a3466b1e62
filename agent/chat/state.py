"""The state of one chat conversation: the document and its versions, the TDD, the model.

`ChatState` holds one document at a time and every earlier version of it (for
/undo), the TDD it came from, the turns so far, and the model, opened once and
kept open (the embedded model takes seconds to start). It prints through its
`console` only. Must not import the chat's commands, session or terminal loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from rich.console import Console

from agent.chat.intent import IntentContext, TddMatch, resolve_tdd
from agent.chat.intent import tdd_files as list_tdds
from agent.core.records import CallRecord, Event, event_line
from agent.core.settings import Settings
from agent.core.templates import Template
from agent.pipeline.generate import Document
from agent.providers import open_configured
from agent.providers.base import Provider


class Pending(BaseModel):
    """A generate request waiting for the answer to "which TDD?"."""

    candidates: list[Path]
    template: str | None = None
    research: bool | None = None


class Version(BaseModel):
    """One state of the document: what /undo goes back to."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    doc: Document
    template: Template


Confirm = Callable[[str], Awaitable[bool]]


async def decline(_question: str) -> bool:
    """The answer to every yes/no question when nobody can be asked."""
    return False


class ChatState:
    """The state of one conversation; no terminal I/O but `console`."""

    def __init__(
        self,
        settings: Settings,
        *,
        console: Console | None = None,
        confirm: Confirm = decline,
        cwd: Path | None = None,
        research: bool = False,
        provider: Provider | None = None,
    ) -> None:
        self.settings = settings
        self.console = console or Console()
        self.confirm = confirm
        self.cwd = cwd or Path.cwd()
        self.research = research
        self.template_name = settings.template
        self.tdd_path: Path | None = None
        self.current: Version | None = None
        self.history: list[Version] = []
        self.saved_markdown: str | None = None
        self.turns: list[str] = []
        self.session_calls: list[CallRecord] = []
        self.pending: Pending | None = None
        self._provider = provider
        # A provider passed in belongs to the caller; one we open, we close.
        self._closes_provider = provider is None

    # --- the model ------------------------------------------------------------------

    async def provider(self) -> Provider:
        if self._provider is None:
            self._provider = await open_configured(
                self.settings,
                progress=lambda msg: self.console.print(f"[dim]{msg}[/dim]"),
            )
            self._closes_provider = True
        return self._provider

    @property
    def provider_label(self) -> str | None:
        """`name:model` of the open provider; None when none is open yet."""
        if self._provider is None:
            return None
        return f"{self._provider.name}:{self._provider.model}"

    async def aclose(self) -> None:
        if self._provider is not None and self._closes_provider:
            await self._provider.aclose()
        self._provider = None

    # --- the document ---------------------------------------------------------------

    @property
    def doc(self) -> Document | None:
        return self.current.doc if self.current else None

    @property
    def dirty(self) -> bool:
        """True when there is a document whose current text has not been saved."""
        return self.current is not None and self.current.doc.markdown != self.saved_markdown

    def push(self, version: Version) -> None:
        """Make `version` the current document; the one it replaces is what /undo restores."""
        if self.current is not None:
            self.history.append(self.current)
        self.current = version

    def need_doc(self) -> Version | None:
        """The current document, or None after telling the user there is none yet."""
        if self.current is None:
            self.say("no document yet: ask for one, or /load PATH then /generate")
        return self.current

    def resolve(self, ref: str) -> TddMatch:
        """A TDD path or feature name; empty means the loaded TDD."""
        return resolve_tdd(ref, self.cwd, self.tdd_path)

    async def ready_to_quit(self) -> bool:
        """True to leave; asks once when the document has unsaved changes."""
        if not self.dirty:
            return True
        return await self.confirm("the document is not saved; quit anyway?")

    # --- the conversation -----------------------------------------------------------

    def context(self) -> IntentContext:
        """What the intent call is told about this session: TDDs, template, sections."""
        template = self.current.template if self.current else None
        sections = (
            [f"{template.number(s.id) or '-'} {s.id} ({s.title})" for s in template.sections]
            if template
            else []
        )
        return IntentContext(
            tdds=[p.name for p in list_tdds(self.cwd, self.tdd_path)][:40],
            loaded=str(self.tdd_path or ""),
            template=self.template_name,
            sections=sections[:20],
        )

    def remember(self, text: str) -> None:
        self.turns.append(" ".join(text.split())[:300])

    def conversation(self, limit: int = 10) -> str:
        """The last turns as lines, for the revise prompt."""
        return "\n".join(f"- {t}" for t in self.turns[-limit:]) or "- (nothing yet)"

    def say(self, text: str) -> None:
        self.remember(f"tidsmith: {text}")
        self.console.print(text, highlight=False, markup=False)

    # --- progress ----------------------------------------------------------------------

    @contextlib.contextmanager
    def status(self, label: str) -> Iterator[None]:
        if self.console.is_terminal:
            with self.console.status(label):
                yield
        else:
            yield

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[Event], None]]:
        done = 0
        console = self.console
        status = console.status(label) if console.is_terminal else None

        def on_event(event: Event) -> None:
            nonlocal done
            if event.kind == "done":
                done += 1
                line = f"[{done}/{total}] {event_line(event)}"
            elif event.kind != "start":
                line = event_line(event)
            else:
                if status is not None:
                    status.update(f"{label}: {done}/{total} done, drafting {event.section}")
                return
            if status is not None:
                status.update(f"{label}: {done}/{total} done")
            console.print(line, highlight=False, markup=False)

        if status is not None:
            status.start()
        else:
            console.print(f"{label}…", highlight=False, markup=False)
        try:
            yield on_event
        finally:
            if status is not None:
                status.stop()
