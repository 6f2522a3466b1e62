"""`tidsmith mcp`: tidsmith as an MCP server over stdio, for coding agents.

Tools are listed once in `TOOLS`; adding one is an async function that takes
plain arguments (and optionally the request `Context`), returns a pydantic
model, and one `ToolSpec` line. Every tool runs the same library functions
as the CLI, so results and one-line errors are the CLI's: a `TidsmithError`
becomes an MCP tool error carrying its message. A cancelled request
(`notifications/cancelled`) cancels the run: the provider is closed and no
document is written (the pipeline keeps the run record, marked interrupted).

A front end: it imports the pipeline and the stages below it, never the cli or
another front end (chat, evaluate, runnable).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import TextResource
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from agent.core import __version__
from agent.core.errors import InputError, TidsmithError
from agent.core.records import Event
from agent.core.settings import load_settings
from agent.core.templates import builtin_names, get_template, load_template_file
from agent.pipeline.actions import EventPump, SectionCounter, review_file
from agent.pipeline.summary import (
    GenerateSummary,
    ReviewSummary,
    TemplateSummary,
    generate_summary,
    review_summary,
    template_summary,
)

if TYPE_CHECKING:
    from research import ResearchConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

INSTRUCTIONS = """\
tidsmith turns a Technical Design Document (TDD, markdown) into a Technical
Implementation Document (template tid) or an Implementation Spec (template
spec): one structured model call per section, assembled and reviewed by code.
Call `generate` with a TDD path; `review` checks any TID or Spec; `templates`
lists the sections each template has. Relative paths are resolved against the
folder the server was started in."""

ReviewMode = Literal["auto", "llm", "lint", "off"]


class GenerateResult(BaseModel):
    """What `generate` returns: where the document is, its summary and its review."""

    path: str | None = Field(description="the document written; None with write=false")
    summary: GenerateSummary
    review: ReviewSummary | None = Field(description="None when review was off")
    markdown: str | None = Field(
        default=None, description="the document itself, only when nothing was written"
    )


class TemplatesResult(BaseModel):
    templates: list[TemplateSummary]


class CheckResult(BaseModel):
    """Verdict counts, and each drifted or missing claim as `doc:line verdict kind value`."""

    counts: dict[str, int]
    problems: list[str]


class UpdateSummary(BaseModel):
    """What `update` did (or, with dry_run, would do)."""

    doc: str
    dry_run: bool
    changed: list[str] = Field(description="TDD headings whose text changed")
    affected: list[str] = Field(description="sections to re-draft")
    kept_edited: list[str] = Field(description="affected sections left alone: edited by hand")
    redrafted: list[str]
    diff: str


class _SectionProgress:
    """Pipeline events → MCP progress notifications: one per drafted section, and the steps."""

    def __init__(self, ctx: Context, sections: list[str]) -> None:
        self._ctx = ctx
        self._counter = SectionCounter(sections)
        self._pump: EventPump[tuple[float, str]] = EventPump(self._send)

    def __call__(self, event: Event) -> None:
        first = self._counter.drafted(event)
        done = float(len(self._counter.done))
        if first:
            self._pump.put((done, f"{event.section} drafted ({int(done)}/{self._counter.total})"))
        elif first is False:
            self._pump.put((done, f"{event.section} re-drafted"))
        elif event.kind == "info" and event.detail:
            self._pump.put((done, event.detail))

    async def _send(self, item: tuple[float, str]) -> None:
        await self._ctx.report_progress(item[0], self._counter.total, item[1])

    async def follow(self, run: Awaitable[T], what: str) -> T:
        """Await a run; when it fails or the client cancels it, stop sending its progress."""
        try:
            return await run
        except asyncio.CancelledError:
            self.cancel()
            log.warning("%s: cancelled by the client; no document written", what)
            raise
        except BaseException:
            self.cancel()
            raise

    async def finish(self) -> None:
        await self._pump.finish()

    def cancel(self) -> None:
        self._pump.cancel()


def _path(value: str) -> Path:
    return Path(value).expanduser()


async def generate(
    ctx: Context,
    tdd: str = "",
    tdd_text: str = "",
    template: str = "tid",
    model: str | None = None,
    base_url: str | None = None,
    out: str | None = None,
    force: bool = False,
    write: bool = True,
    research: bool = False,
    docs: list[str] | None = None,
    codebase: str | None = None,
    review: ReviewMode | None = None,
) -> GenerateResult:
    """Write a TID (template "tid") or Implementation Spec ("spec") from a TDD.

    Give `tdd`, a path to the TDD markdown file, or `tdd_text`, its text (then
    `out` is required unless write=false). The document is written under the
    naming convention (0xcc/tdds/002_FTDD|Name.md -> 0xcc/tids/002_FTID|Name.md)
    unless `out` names a file or folder; an existing file is kept unless
    force=true. `research`, `docs` (folders to search) and `codebase` (a
    project folder) research first and add cited References. Progress is
    reported once per drafted section. Returns the path, the run summary
    (tokens, cost, model) and the review (lint errors, scores).
    """
    # Lazy: the server answers `initialize` before it loads the pipeline (providers).
    from agent.pipeline.generate import run_generate

    _check_tdd_arguments(tdd, tdd_text, write=write, out=out)
    settings = load_settings(
        {"model": model, "template": template, "base_url": base_url, "review": review}
    )
    chosen = get_template(settings.template)
    config = _research_config(research, docs, codebase)
    progress = _SectionProgress(ctx, [s.id for s in chosen.sections])
    with tempfile.TemporaryDirectory(prefix="tidsmith-mcp-") as scratch:
        run = run_generate(
            _tdd_file(tdd, tdd_text, Path(scratch)),
            settings=settings,
            template=chosen,
            out=_path(out) if out else None,
            force=force,
            write=write,
            on_event=progress,
            research=config,
        )
        doc = await progress.follow(run, f"generate {tdd or 'text'}")
    await progress.finish()
    summary = generate_summary(doc)
    return GenerateResult(
        path=doc.path,
        summary=summary,
        review=summary.review,
        markdown=None if doc.path is not None else doc.markdown,
    )


def _check_tdd_arguments(tdd: str, tdd_text: str, *, write: bool, out: str | None) -> None:
    """`generate` takes a TDD path or its text, and text is written only where `out` says."""
    if bool(tdd) == bool(tdd_text):
        raise InputError("give either tdd (a path to the TDD) or tdd_text (its markdown)")
    if tdd_text and write and not out:
        raise InputError("generating from tdd_text needs out (a folder or .md path) to write to")


def _research_config(
    research: bool, docs: list[str] | None, codebase: str | None
) -> ResearchConfig | None:
    """The research `generate` asks for (with tidsmith.toml's sources), or None."""
    if not (research or docs or codebase):
        return None
    # Lazy: the server answers `initialize` before it loads the research sources.
    from research.config import load_research_config

    return load_research_config(
        docs=[_path(d) for d in docs or []] or None,
        codebase=_path(codebase) if codebase else None,
    )


def _tdd_file(tdd: str, tdd_text: str, scratch: Path) -> Path:
    """The TDD's path: the one given, or its text written into the scratch folder."""
    if not tdd_text:
        return _path(tdd)
    source = scratch / "tdd.md"
    source.write_text(tdd_text, encoding="utf-8")
    return source


async def review(
    doc: str,
    tdd: str | None = None,
    template: str | None = None,
    llm: bool = False,
    model: str | None = None,
    base_url: str | None = None,
) -> ReviewSummary:
    """Review a TID or Spec, generated or hand-written: sections present and in order, code
    blocks and Mermaid diagrams that parse, no placeholders, pinned versions, spec limits and,
    with its TDD (given or found through the document's link), TDD coverage. `passed` is false
    when a lint of severity error fails. llm=true also asks the model to judge the template's
    checklist.
    """
    settings = load_settings({"model": model, "base_url": base_url}) if llm else None
    reviewed = await review_file(
        _path(doc),
        tdd=_path(tdd) if tdd else None,
        template=template,
        llm=llm,
        settings=settings,
    )
    return review_summary(reviewed.report, document=doc, tdd=reviewed.tdd)


async def templates(path: str | None = None) -> TemplatesResult:
    """The built-in templates (or one template YAML, validated): sections, parts, checklist."""
    listed = (
        [load_template_file(_path(path))]
        if path
        else [get_template(name) for name in builtin_names()]
    )
    return TemplatesResult(templates=[template_summary(t) for t in listed])


async def check(
    docs: list[str],
    codebase: str,
    tdd: str | None = None,
    planned: bool = False,
) -> CheckResult:
    """Check documents' concrete claims (paths, modules, classes, functions, imports, packages
    and versions, env vars, endpoints, CLI commands) against a codebase with real parsers:
    each is found (file:line), new (the document or its TDD says it creates it), drifted
    (found elsewhere or with another version or signature) or missing. planned=true: a
    document written before the code, whose unmatched claims are new.
    """
    # Lazy: the server answers `initialize` before it loads the claim checker (parsers).
    from agent.check import check_documents

    report = await asyncio.to_thread(
        check_documents,
        [_path(d) for d in docs],
        _path(codebase),
        tdd=_path(tdd) if tdd else None,
        planned=planned,
    )
    problems = [
        f"{f.claim.doc}:{f.claim.line} {f.verdict} {f.claim.kind} {f.claim.value}"
        + (f" ({f.detail})" if f.detail else "")
        for f in report.findings
        if f.verdict in ("drifted", "missing")
    ]
    return CheckResult(counts=report.counts(), problems=problems[:200])


async def update(
    doc: str,
    tdd: str | None = None,
    codebase: str | None = None,
    dry_run: bool = True,
    force_sections: bool = False,
    model: str | None = None,
) -> UpdateSummary:
    """Update a document tidsmith wrote after its TDD changed: re-draft only the sections whose
    TDD headings changed (and, with codebase, those whose claims check finds missing), keep
    every other section byte for byte and hand-edited sections unless force_sections.
    dry_run (the default) lists the sections and the estimated cost without calling a model.
    """
    # Lazy: the server answers `initialize` before it loads the update stage (providers).
    from agent.update.document import aupdate_document

    result = await aupdate_document(
        _path(doc),
        tdd=_path(tdd) if tdd else None,
        codebase=_path(codebase) if codebase else None,
        dry_run=dry_run,
        force_sections=force_sections,
        overrides={"model": model},
    )
    return UpdateSummary(
        doc=result.doc,
        dry_run=result.dry_run,
        changed=result.changed,
        affected=sorted(result.affected),
        kept_edited=result.kept_edited,
        redrafted=result.redrafted,
        diff=result.diff[:20_000],
    )


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool: its function, and whether it only reads."""

    fn: Callable[..., Awaitable[BaseModel]]
    read_only: bool
    title: str


TOOLS: list[ToolSpec] = [
    ToolSpec(generate, read_only=False, title="Generate a TID or Spec from a TDD"),
    ToolSpec(review, read_only=True, title="Review a TID or Spec"),
    ToolSpec(templates, read_only=True, title="List the document templates"),
    ToolSpec(check, read_only=True, title="Check a document's claims against a codebase"),
    ToolSpec(update, read_only=False, title="Update a document after its TDD changed"),
]


def _one_line_errors(fn: Callable[..., Awaitable[BaseModel]]) -> Callable[..., Awaitable[Any]]:
    """Our errors become MCP tool errors with the CLI's one-line message."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> BaseModel:
        try:
            return await fn(*args, **kwargs)
        except TidsmithError as e:
            raise ToolError(str(e)) from e

    return wrapper


def template_resources() -> list[TextResource]:
    """Each built-in template's YAML as a resource, tidsmith://templates/NAME."""
    builtins = [get_template(name) for name in builtin_names()]
    return [
        TextResource(
            uri=f"tidsmith://templates/{t.name}",
            name=t.name,
            title=f"{t.title} template {t.version}",
            description=t.description,
            mime_type="application/yaml",
            text=Path(t.source).read_text(encoding="utf-8"),
        )
        for t in builtins
    ]


def build_server(tools: list[ToolSpec] | None = None) -> MCPServer:
    server = MCPServer(
        "tidsmith",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )
    for spec in tools or TOOLS:
        server.add_tool(
            _one_line_errors(spec.fn),
            name=spec.fn.__name__,
            title=spec.title,
            annotations=ToolAnnotations(
                read_only_hint=spec.read_only, destructive_hint=False, open_world_hint=True
            ),
        )
    for resource in template_resources():
        server.add_resource(resource)
    return server


def serve() -> None:
    """Serve on stdin/stdout until the client closes the connection."""
    build_server().run("stdio")
