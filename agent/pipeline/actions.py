"""What the front ends (CLI, MCP server, Runnable) do beyond `run_generate`, done once.

Each function takes plain values, returns models, and raises our own errors,
so every front end reports the same result and the same one-line message.
Imports no other module of `agent.pipeline` and never a front end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from agent.core.records import Event
from agent.core.settings import Settings
from agent.core.tdd import load_tdd
from agent.core.templates import Template, get_template
from agent.document.lints import read_document
from agent.providers import open_configured
from agent.review import ReviewReport, find_tdd_for, load_sections_json, review_markdown

T = TypeVar("T")


class ReviewedFile(BaseModel):
    """A reviewed document: the report, the TDD it was checked against, the template used."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    report: ReviewReport
    tdd: Path | None
    template: Template


def review_template(doc: Path, template: str | None) -> Template:
    """The template named, else `spec` for files named like *SPEC*, else `tid`."""
    return get_template(template or ("spec" if "SPEC" in doc.stem.upper() else "tid"))


async def review_file(
    doc: Path,
    *,
    tdd: Path | None = None,
    template: str | None = None,
    llm: bool = False,
    settings: Settings | None = None,
    max_tokens: int | None = None,
) -> ReviewedFile:
    """Review a document on disk: lints, coverage against its TDD, and verdicts with `llm`."""
    markdown = read_document(doc)
    chosen = review_template(doc, template)
    tdd_path = tdd or find_tdd_for(doc, markdown)
    loaded = load_tdd(tdd_path) if tdd_path is not None else None
    provider = None
    if llm:
        settings = settings or Settings()
        provider = await open_configured(
            settings,
        )
    try:
        report = await review_markdown(
            markdown,
            chosen,
            tdd=loaded,
            sections=load_sections_json(doc),
            provider=provider,
            max_tokens=max_tokens,
        )
    finally:
        if provider is not None:
            await provider.aclose()
    return ReviewedFile(report=report, tdd=tdd_path, template=chosen)


class SectionCounter:
    """Which pipeline events are a section drafted for the first time, and how many so far."""

    def __init__(self, sections: list[str]) -> None:
        self.sections = set(sections)
        self.total = len(sections)
        self.done: set[str] = set()

    def drafted(self, event: Event) -> bool | None:
        """True for a section's first draft, False for a re-draft, None for any other event."""
        if event.kind != "done" or event.section not in self.sections:
            return None
        if event.section in self.done:
            return False
        self.done.add(event.section)
        return True


class EventPump(Generic[T]):
    """Hands items from a plain callback to an async sender, in order, on one task.

    The pipeline reports progress through a sync callback; MCP notifications
    and LangChain custom events are sent with `await`.
    """

    def __init__(self, send: Callable[[T], Awaitable[None]]) -> None:
        self._send = send
        self._queue: asyncio.Queue[tuple[T] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump())

    def put(self, item: T) -> None:
        self._queue.put_nowait((item,))

    async def _pump(self) -> None:
        while (item := await self._queue.get()) is not None:
            await self._send(item[0])

    async def finish(self) -> None:
        """Send everything queued, so it all arrives before the result."""
        self._queue.put_nowait(None)
        await self._task

    def cancel(self) -> None:
        self._task.cancel()
