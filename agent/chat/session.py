"""`tidsmith chat` and `tidsmith ask`: the pipeline as a conversation.

A `ChatSession` holds one document at a time and every earlier version of it
(for /undo), the TDD it came from, and the model, opened once and kept open
(the embedded model takes seconds to start). Natural-language lines become an
`Intent` (agent/chat/intent.py); slash commands reach the same actions without the
model. Each step runs as its own asyncio task so Ctrl-C cancels the step, not
the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from agent.chat.intent import (
    Intent,
    IntentContext,
    TddMatch,
    interpret,
    pick_candidate,
    preparse,
    resolve_section,
    resolve_tdd,
)
from agent.chat.intent import tdd_files as list_tdds
from agent.core.errors import InputError, TidsmithError
from agent.core.paths import default_output_path, run_record_path
from agent.core.records import CallRecord, Event, event_line, totals
from agent.core.settings import Settings
from agent.core.tdd import Tdd, load_tdd
from agent.core.templates import Template, builtin_names, get_template, section_heading
from agent.core.write import write_atomic, write_json_atomic
from agent.document.assemble import render_section
from agent.draft.plan import SectionDraft
from agent.draft.prompting import fill, load_prompt
from agent.draft.sections import draft_section
from agent.pipeline.generate import (
    Document,
    document_header,
    draft_plan,
    prompt_versions,
    render_document,
    run_generate,
)
from agent.providers import open_provider, provider_default_max_tokens
from agent.providers.base import Message, Provider
from research.config import load_research_config

REVISE_PROMPT = "revise_instruction"
REVIEW_SHOWN = 20

COMMANDS: dict[str, tuple[str, str]] = {
    "/load": ("PATH", "use this TDD for the next /generate"),
    "/generate": ("", "draft the whole document from the loaded TDD"),
    "/research": ("on|off", "research before drafting (needs the pipeline's research stage)"),
    "/template": ("tid|spec", "the document kind the next /generate writes"),
    "/model": ("ID", "switch model, e.g. openai:gpt-4.1-mini, anthropic:MODEL, local, fake"),
    "/show": ("[SECTION]", "print the document, or one section by number, id or title"),
    "/revise": ("SECTION INSTRUCTION", "re-draft one section following the instruction"),
    "/review": ("", "check the document against the template's lints"),
    "/diff": ("", "what the last change did to the document"),
    "/undo": ("", "go back to the previous version"),
    "/save": ("[PATH]", "write the document (default: the 0xcc/tids/ naming convention)"),
    "/cost": ("", "calls, tokens and cost of this document and this session"),
    "/help": ("", "this list"),
    "/quit": ("", "leave (asks once if the document is not saved)"),
}


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


async def _never(_question: str) -> bool:
    return False


class ChatSession:
    """The state of one conversation and the actions on it; no terminal I/O but `console`."""

    def __init__(
        self,
        settings: Settings,
        *,
        console: Console | None = None,
        confirm: Confirm = _never,
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
        self._own_provider = provider is None

    # --- the model ------------------------------------------------------------------

    async def provider(self) -> Provider:
        if self._provider is None:
            self._provider = await open_provider(
                self.settings.model,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout,
                structured=self.settings.structured,
                reasoning_effort=self.settings.reasoning_effort,
                progress=lambda msg: self.console.print(f"[dim]{msg}[/dim]"),
            )
            self._own_provider = True
        return self._provider

    async def aclose(self) -> None:
        if self._provider is not None and self._own_provider:
            await self._provider.aclose()
        self._provider = None

    # --- state ----------------------------------------------------------------------

    @property
    def doc(self) -> Document | None:
        return self.current.doc if self.current else None

    @property
    def dirty(self) -> bool:
        """True when there is a document whose current text has not been saved."""
        return self.current is not None and self.current.doc.markdown != self.saved_markdown

    def _context(self) -> IntentContext:
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

    def _remember(self, text: str) -> None:
        self.turns.append(" ".join(text.split())[:300])

    def conversation(self, limit: int = 10) -> str:
        """The last turns as lines, for the revise prompt."""
        return "\n".join(f"- {t}" for t in self.turns[-limit:]) or "- (nothing yet)"

    # --- one line of input --------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        try:
            if line.startswith("/"):
                return await self.command(line)
            self._remember(f"user: {line}")
            if await self._answer_pending(line):
                return True
            intent = await self.interpret(line)
            return await self.act(intent)
        except TidsmithError as e:
            # Text, not markup: messages quote user input that may hold [brackets].
            self.console.print(Text.assemble(("error: ", "red"), str(e)))
            return True

    async def _answer_pending(self, line: str) -> bool:
        """True when the line answered the last "which TDD?" and generation ran."""
        pending, self.pending = self.pending, None
        chosen = pick_candidate(line, pending.candidates) if pending else None
        if pending is None or chosen is None:
            return False
        await self.generate(str(chosen), template=pending.template, research=pending.research)
        return True

    async def interpret(self, text: str) -> Intent:
        """The line's intent; the model is only opened when the pre-parse cannot decide."""
        quick = preparse(text)
        if quick is not None:
            return quick
        with self._status("reading the request"):
            intent, record = await interpret(text, await self.provider(), self._context())
        if record is not None:
            self.session_calls.append(record)
        return intent

    async def act(self, intent: Intent) -> bool:
        """Carry out an intent, whichever way it was reached."""
        action = intent.action
        if action == "generate":
            # A request that asks for research turns it on; one that does not
            # keeps what /research set.
            research = True if intent.research else None
            await self.generate(intent.tdd, template=intent.template, research=research)
        elif action == "revise":
            await self.revise(intent.section, intent.instruction)
        elif action == "review":
            self.review()
        elif action == "save":
            await self.save(intent.value)
        elif action == "set_model":
            await self.set_model(intent.value)
        elif action == "set_template":
            self.set_template(intent.template or intent.value)
        elif action == "show_cost":
            self.show_cost()
        elif action == "show":
            self.show(intent.section)
        elif action == "clarify":
            self.say(intent.question or "Could you say that again with the TDD's file name?")
        else:
            self.say(
                "I can create a TID or Spec from a TDD, revise a section, review, save or show "
                "cost. Try: Please create a TID for Data Export based on 0xcc/tdds/FILE.md "
                "(or /help)."
            )
        return True

    def say(self, text: str) -> None:
        self._remember(f"tidsmith: {text}")
        self.console.print(text, highlight=False, markup=False)

    async def command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        name, arg = name.lower(), arg.strip()
        if name not in COMMANDS:
            near = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f"; did you mean {near[0]}?" if near else "; /help lists them"
            self.say(f"unknown command {name}{hint}")
            return True
        if name == "/quit":
            return not await self.ready_to_quit()
        if name == "/help":
            self.help()
        elif name == "/load":
            self.load(arg)
        elif name == "/generate":
            await self.generate(arg)
        elif name == "/research":
            self.set_research(arg)
        elif name == "/template":
            self.set_template(arg)
        elif name == "/model":
            await self.set_model(arg)
        elif name == "/show":
            self.show(arg)
        elif name == "/revise":
            section, _, instruction = arg.partition(" ")
            self._remember(f"user: revise {section}: {instruction}")
            await self.revise(section, instruction.strip())
        elif name == "/review":
            self.review()
        elif name == "/diff":
            self.diff()
        elif name == "/undo":
            self.undo()
        elif name == "/save":
            await self.save(arg)
        elif name == "/cost":
            self.show_cost()
        return True

    # --- actions ----------------------------------------------------------------------

    def help(self) -> None:
        table = Table(show_header=False, box=None, pad_edge=False)
        for name, (args, text) in COMMANDS.items():
            table.add_row(f"{name} {args}".strip(), text)
        self.console.print(table)
        research = "on" if self.research else "off"
        self.console.print(
            "Or just ask: 'Please create a TID for Data Export based on "
            "0xcc/tdds/002_FTDD|Data_Export.md', 'Research first: … then create the TID for …', "
            "'revise section 2 to add the test utilities'.\n"
            "Multi-line input: end a line with \\ to continue it (or Esc then Enter in a "
            "terminal). Tab completes commands and file paths. Ctrl-C cancels a running step; "
            f"Ctrl-D or /quit leaves. Template: {self.template_name}; research: {research}.",
            highlight=False,
            markup=False,
        )

    def load(self, arg: str) -> None:
        if not arg:
            self.say("usage: /load PATH (a TDD markdown file)")
            return
        match = resolve_tdd(arg, self.cwd, self.tdd_path)
        if match.path is None:
            self.say(match.message)
            return
        tdd = load_tdd(match.path)  # checks it now, not at /generate
        self.tdd_path = match.path
        self.say(f"loaded {match.path} ({tdd.feature}, {len(tdd.headings)} headings)")

    def set_research(self, arg: str) -> None:
        if arg.lower() not in {"on", "off"}:
            self.say("usage: /research on|off")
            return
        self.research = arg.lower() == "on"
        self.say(f"research {'on' if self.research else 'off'}")

    def set_template(self, arg: str) -> None:
        if not arg:
            self.say(f"usage: /template {'|'.join(builtin_names())} (or a template YAML path)")
            return
        template = get_template(arg)  # a bad name is a one-line error here
        self.template_name = arg
        later = " (the current document keeps its template)" if self.current else ""
        self.say(f"template {template.name}: the next /generate writes a {template.title}{later}")

    async def set_model(self, arg: str) -> None:
        if not arg:
            label = f"{self._provider.name}:{self._provider.model}" if self._provider else None
            self.say(f"model: {label or self.settings.model or 'default'}; usage: /model ID")
            return
        from agent.providers import parse_model_id

        parse_model_id(arg)  # a bad id fails now, not at the next call
        await self.aclose()
        self.settings = self.settings.model_copy(update={"model": arg})
        self.say(f"model {arg} (opened at the next request)")

    def resolve(self, ref: str) -> TddMatch:
        """A TDD path or feature name; empty means the loaded TDD."""
        return resolve_tdd(ref, self.cwd, self.tdd_path)

    async def generate(
        self, ref: str = "", *, template: str | None = None, research: bool | None = None
    ) -> None:
        match = self.resolve(ref)
        if match.path is None:
            if match.candidates:
                # The next line may answer the question with a name, number or "the first".
                self.pending = Pending(
                    candidates=match.candidates, template=template, research=research
                )
            self.say(match.message)
            return
        tdd = load_tdd(match.path)
        if template:
            self.template_name = template
        if research is not None:
            self.research = research
        chosen = get_template(self.template_name)
        self.tdd_path = match.path
        settings = self.settings.model_copy(update={"template": self.template_name})
        provider = await self.provider()
        started = time.perf_counter()
        with self.progress(len(chosen.sections), f"drafting the {chosen.doc_kind}") as progress:
            doc = await run_generate(
                match.path,
                settings=settings,
                provider=provider,
                template=chosen,
                write=False,
                on_event=progress,
                # The sources in tidsmith.toml, as `generate --research` uses them.
                research=load_research_config() if self.research else None,
            )
        self._push(Version(doc=doc, template=chosen))
        self.session_calls.extend(doc.record.calls)
        t = doc.record.totals
        target = default_output_path(tdd, chosen.doc_kind)
        self.say(
            f"drafted the {chosen.doc_kind} for {tdd.feature}: {len(doc.sections)} sections in "
            f"{time.perf_counter() - started:.1f}s ({t.calls} calls, {t.input_tokens} input + "
            f"{t.output_tokens} output tokens, {_money(t.cost_usd)}). "
            f"/show to read it, /save to write {_shown(target, self.cwd)}"
        )

    def _push(self, version: Version) -> None:
        if self.current is not None:
            self.history.append(self.current)
        self.current = version

    def _need_doc(self) -> Version | None:
        if self.current is None:
            self.say("no document yet: ask for one, or /load PATH then /generate")
        return self.current

    async def revise(self, ref: str, instruction: str) -> None:
        version = self._need_doc()
        if version is None:
            return
        template = version.template
        section = resolve_section(template, ref)
        if section is None:
            self.say(f"which section? {_section_list(template)}")
            return
        if not instruction:
            self.say(f"what should change in {section_heading(template, section)}?")
            return
        doc = version.doc
        tdd = load_tdd(Path(doc.record.tdd_path))
        provider = await self.provider()
        max_tokens = self.settings.max_tokens or provider_default_max_tokens(provider)
        # The section's original request, its previous answer, then the instruction:
        # the model revises its own draft instead of starting over.
        plan = draft_plan(
            template,
            tdd,
            provider,
            max_tokens=max_tokens,
            research=doc.research,
            sections=[section],
        )
        previous = next(d for d in doc.sections if d.section_id == section.id)
        prompt = load_prompt(REVISE_PROMPT)
        ask = fill(
            prompt.user,
            section_heading=section_heading(template, section),
            instruction=instruction.strip(),
            conversation=self.conversation(),
        )
        messages = [
            *plan.requests[section.id],
            Message(role="assistant", content=json.dumps(previous.content, ensure_ascii=False)),
            Message(role="user", content=ask.strip()),
        ]
        heading = section_heading(template, section)
        with self.progress(1, f"revising {heading}") as progress:
            draft = await draft_section(
                provider,
                template,
                section,
                messages,
                max_tokens=max_tokens,
                on_event=progress,
                cites=plan.cites,
            )
        self.session_calls.extend(draft.calls)
        revised = Version(doc=_replace_section(doc, template, tdd, draft), template=template)
        if revised.doc.markdown == doc.markdown:
            # Nothing to undo or diff, but the calls still count.
            self.current = revised
            self.say(f"re-drafted {heading}: the model returned it unchanged")
            return
        self._push(revised)
        self._remember(f"tidsmith: revised {heading}")
        self.console.print(f"re-drafted {heading} (/undo goes back):", highlight=False)
        self.diff()

    def show(self, ref: str = "") -> None:
        version = self._need_doc()
        if version is None:
            return
        if not ref:
            self.console.print(Markdown(version.doc.markdown))
            return
        section = resolve_section(version.template, ref)
        if section is None:
            self.say(f"no section {ref!r}: {_section_list(version.template)}")
            return
        content = next(d.content for d in version.doc.sections if d.section_id == section.id)
        self.console.print(Markdown(render_section(version.template, section, content)))

    def diff(self) -> None:
        if self.current is None or not self.history:
            self.say("nothing to compare yet: /diff shows what the last change did")
            return
        before, after = self.history[-1].doc.markdown, self.current.doc.markdown
        lines = list(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile="before",
                tofile="after",
                n=1,
            )
        )
        if not lines:
            self.say("no differences between the last two versions")
            return
        text = Text()
        for line in lines:
            style = (
                "cyan"
                if line.startswith("@@")
                else "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else ""
            )
            text.append(line if line.endswith("\n") else line + "\n", style=style)
        self.console.print(text, end="")

    def undo(self) -> None:
        if not self.history:
            self.say("nothing to undo")
            return
        self.current = self.history.pop()
        self.say(f"back to the previous version ({len(self.history)} older versions kept)")

    def review(self) -> None:
        version = self._need_doc()
        if version is None:
            return
        try:
            from agent.document.lints import lint_document
        except ImportError:  # a build without the review stage
            self.say("review is not available in this version of tidsmith")
            return
        tdd = load_tdd(Path(version.doc.record.tdd_path))
        findings = lint_document(
            version.doc.markdown,
            version.template,
            tdd=tdd,
            sections={d.section_id: d.content for d in version.doc.sections},
        )
        if not findings:
            self.say("review: the lints found no problems")
            return
        errors = sum(f.severity == "error" for f in findings)
        self.say(
            f"review: {len(findings)} findings ({errors} errors); "
            "/revise SECTION INSTRUCTION fixes one section"
        )
        for f in findings[:REVIEW_SHOWN]:
            where = f.where or f.section or "document"
            line = f" line {f.line}" if f.line else ""
            self.console.print(
                f"- {f.severity} {where}{line}: {f.message} [{f.id}]", highlight=False, markup=False
            )
        if len(findings) > REVIEW_SHOWN:
            self.console.print(f"… and {len(findings) - REVIEW_SHOWN} more", highlight=False)

    async def save(self, arg: str = "", *, force: bool = False) -> Path | None:
        version = self._need_doc()
        if version is None:
            return None
        doc, template = version.doc, version.template
        tdd = load_tdd(Path(doc.record.tdd_path))
        out = self.cwd / arg if arg else None  # an absolute `arg` replaces cwd
        path = default_output_path(tdd, template.doc_kind, out)
        if not out and doc.path:
            path = Path(doc.path)
        ours = doc.path is not None and Path(doc.path) == path and self._unchanged_on_disk(path)
        if path.exists() and not force and not ours:
            if not await self.confirm(f"{_shown(path, self.cwd)} exists; overwrite it?"):
                self.say("not saved; /save PATH writes somewhere else")
                return None
            force = True
        markdown = _assemble(doc, template, tdd, path)
        record = doc.record.model_copy(update={"output_path": str(path)})
        write_atomic(path, markdown, force=force or ours)
        write_json_atomic(run_record_path(path), record)
        write_json_atomic(
            run_record_path(path).with_name(f"{path.stem}.sections.json"),
            {d.section_id: d.content for d in doc.sections},
        )
        saved = doc.model_copy(update={"markdown": markdown, "path": str(path), "record": record})
        self.current = Version(doc=saved, template=template)
        self.saved_markdown = markdown
        self.say(f"saved {_shown(path, self.cwd)}")
        return path

    def _unchanged_on_disk(self, path: Path) -> bool:
        """True when `path` holds what this session last saved there (saving again is safe)."""
        try:
            return path.read_text(encoding="utf-8") == self.saved_markdown
        except OSError:
            return False

    def show_cost(self) -> None:
        rows: list[tuple[str, list[CallRecord]]] = []
        if self.current is not None:
            rows.append(("this document", self.current.doc.record.calls))
        rows.append(("this session", self.session_calls))
        for label, calls in rows:
            t = totals(calls)
            self.console.print(
                f"{label}: {t.calls} calls, {t.input_tokens} input + {t.output_tokens} output "
                f"tokens ({t.cached_tokens} cached), {_money(t.cost_usd)}",
                highlight=False,
            )

    async def ready_to_quit(self) -> bool:
        """True to leave; asks once when the document has unsaved changes."""
        if not self.dirty:
            return True
        return await self.confirm("the document is not saved; quit anyway?")

    # --- progress ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _status(self, label: str) -> Iterator[None]:
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


# --- the document after a change ------------------------------------------------------------


_DATE = re.compile(r"^(?:\*\*Date:\*\*|> \*\*Version\*\*:.*\*\*Updated\*\*:)\s*(\S+)", re.M)


def _assemble(doc: Document, template: Template, tdd: Tdd, path: Path | None) -> str:
    """The markdown the pipeline would have written for this document at `path`."""
    date = _DATE.search(doc.markdown)
    today = date.group(1) if date else doc.record.started_at[:10]
    header = document_header(template, tdd, path, doc.record.model, today)
    out_dir = path.parent if path is not None else Path.cwd()
    return render_document(template, tdd, header, doc.sections, out_dir, research=doc.research)


def _replace_section(doc: Document, template: Template, tdd: Tdd, draft: SectionDraft) -> Document:
    """The document with one section re-drafted: new markdown, record with the new calls."""
    sections = [draft if d.section_id == draft.section_id else d for d in doc.sections]
    calls = [*doc.record.calls, *draft.calls]
    record = doc.record.model_copy(
        update={
            "calls": calls,
            "totals": totals(calls),
            "prompts": {
                **prompt_versions(research=False, review=False),
                **doc.record.prompts,
                **_revise_version(),
            },
        }
    )
    updated = doc.model_copy(update={"sections": sections, "record": record})
    path = Path(doc.path) if doc.path else None
    return updated.model_copy(update={"markdown": _assemble(updated, template, tdd, path)})


def _revise_version() -> dict[str, str]:
    return {REVISE_PROMPT: load_prompt(REVISE_PROMPT).version}


# --- small helpers ------------------------------------------------------------------------


def _money(cost: float | None) -> str:
    return "unknown price" if cost is None else f"${cost:.4f}"


def _shown(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def _section_list(template: Template) -> str:
    return ", ".join(f"{template.number(s.id) or s.id} {s.title}" for s in template.sections)


# --- the terminal -------------------------------------------------------------------------


class LineReader(Protocol):
    """Where lines come from: a prompt_toolkit session, or plain stdin for scripts."""

    async def read(self, prompt: str) -> str:
        """The next line; EOFError at the end, KeyboardInterrupt on Ctrl-C at the prompt."""
        ...

    async def confirm(self, question: str) -> bool: ...


class PlainReader:
    """Lines from a stream that is not a terminal: scriptable, no prompts echoed."""

    def __init__(self, stream: Any = None, console: Console | None = None) -> None:
        self.stream = stream or sys.stdin
        self.console = console or Console()

    async def read(self, prompt: str) -> str:
        line = self.stream.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    async def confirm(self, question: str) -> bool:
        self.console.print(f"{question} [y/N]", highlight=False, markup=False)
        try:
            answer = await self.read("")
        except EOFError:
            return False
        return answer.strip().lower() in {"y", "yes"}


def data_dir(env: dict[str, str] | None = None) -> Path:
    """The per-user folder for tidsmith's own state (chat history)."""
    env = dict(os.environ) if env is None else env
    if env.get("TIDSMITH_DATA_DIR"):
        return Path(env["TIDSMITH_DATA_DIR"])
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tidsmith"


class TerminalReader:
    """prompt_toolkit: history across sessions, Esc+Enter for a new line, Tab completion."""

    def __init__(self, session: ChatSession, history: Path | None = None) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.key_binding import KeyBindings

        history = history or data_dir() / "chat_history"
        history.parent.mkdir(parents=True, exist_ok=True)
        keys = KeyBindings()

        @keys.add("escape", "enter")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        self._prompt: PromptSession[str] = PromptSession(
            history=FileHistory(str(history)),
            completer=_completer(session),
            key_bindings=keys,
            complete_while_typing=False,
        )
        self._yes_no: PromptSession[str] = PromptSession()

    async def read(self, prompt: str) -> str:
        return await self._prompt.prompt_async(prompt)

    async def confirm(self, question: str) -> bool:
        try:
            answer = await self._yes_no.prompt_async(f"{question} [y/N] ")
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in {"y", "yes"}


def _completer(session: ChatSession) -> Any:
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document as PtDocument

    paths = PathCompleter(expanduser=True)

    class ChatCompleter(Completer):
        def get_completions(self, document: PtDocument, complete_event: Any) -> Iterator[Any]:
            text = document.text_before_cursor
            if text.startswith("/") and " " not in text:
                for name, (args, help_text) in COMMANDS.items():
                    if name.startswith(text.lower()):
                        yield Completion(
                            name, -len(text), display_meta=f"{args} {help_text}".strip()
                        )
                return
            command, _, arg = text.partition(" ")
            choices: list[str] = []
            if command == "/template":
                choices = builtin_names()
            elif command == "/research":
                choices = ["on", "off"]
            elif command in {"/show", "/revise"} and " " not in arg and session.current:
                t = session.current.template
                choices = [str(t.number(s.id) or s.id) for s in t.sections]
            if choices:
                for choice in choices:
                    if choice.startswith(arg):
                        yield Completion(choice, -len(arg))
                return
            # A file path: the argument of /load and /save, or a word with a / in it.
            word = arg if command in {"/load", "/save"} else text.split(" ")[-1]
            if command in {"/load", "/save"} or "/" in word or word.startswith("0xcc"):
                yield from paths.get_completions(PtDocument(word, len(word)), complete_event)

    return ChatCompleter()


async def run_step(coro: Coroutine[Any, Any, bool], console: Console) -> bool:
    """Run one step as a task that Ctrl-C (SIGINT) cancels; the session goes on."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)

    def cancel() -> None:
        loop.call_soon_threadsafe(task.cancel)

    restore = _on_sigint(cancel)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the session itself is being cancelled, not just this step
        console.print("cancelled; the document is as it was before this step", highlight=False)
        return True
    finally:
        restore()


def _on_sigint(callback: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT to `callback` until the returned function is called."""
    try:
        previous = signal.signal(signal.SIGINT, lambda _s, _f: callback())
    except ValueError:  # not the main thread: Ctrl-C cannot be routed here
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore


async def repl(session: ChatSession, reader: LineReader, *, prompt: str = "tidsmith> ") -> int:
    """Read lines and act on them until /quit or end of input."""
    debug = os.environ.get("TIDSMITH_DEBUG") not in (None, "", "0")
    at_end = False
    try:
        while True:
            try:
                line = await reader.read(prompt)
                # A trailing backslash continues the request on the next line.
                while line.endswith("\\"):
                    line = line[:-1] + "\n" + await reader.read("... ")
                at_end = False
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line, as in a shell
            except EOFError:
                # Asked once; a second end of input (Ctrl-D again, a script's end) leaves.
                if at_end or await session.ready_to_quit():
                    if session.dirty:
                        session.console.print("left without saving the document")
                    break
                at_end = True
                continue
            try:
                if not await run_step(session.handle(line), session.console):
                    break
            except Exception:
                # A bug: show it, but keep the unsaved document the user is working on.
                if debug:
                    raise
                session.console.print_exception()
    finally:
        await session.aclose()
    return 0


def run_chat(settings: Settings, *, research: bool = False) -> int:
    """`tidsmith chat`: a terminal session, or plain line reading when stdin is not a terminal."""
    console = Console()
    interactive = sys.stdin.isatty() and sys.stdout.isatty()

    async def main() -> int:
        holder: list[LineReader] = []

        async def confirm(question: str) -> bool:
            return await holder[0].confirm(question)

        session = ChatSession(settings, console=console, confirm=confirm, research=research)
        reader: LineReader = TerminalReader(session) if interactive else PlainReader(None, console)
        holder.append(reader)
        if interactive:
            console.print(
                f"tidsmith chat: template {session.template_name}, model "
                f"{settings.model or 'default'}. Ask for a document, or /help.",
                highlight=False,
            )
        return await repl(session, reader)

    return asyncio.run(main())


async def ask_once(
    text: str,
    settings: Settings,
    *,
    out: Path | None = None,
    force: bool = False,
    research: bool = False,
    console: Console | None = None,
    provider: Provider | None = None,
    cwd: Path | None = None,
) -> Document:
    """`tidsmith ask`: one request that creates a document, written like `generate` writes it."""
    console = console or Console(stderr=True)
    session = ChatSession(settings, console=console, cwd=cwd, research=research, provider=provider)
    try:
        intent = await session.interpret(text)
        if intent.action == "clarify":
            raise InputError(intent.question or "the request is missing something; say which TDD")
        if intent.action != "generate":
            raise InputError(
                f"ask only creates documents (this reads as {intent.action}); "
                "use tidsmith chat for the rest"
            )
        match = session.resolve(intent.tdd)
        if match.path is None:
            raise InputError(match.message)
        name = intent.template or settings.template
        template = get_template(name)
        model = await session.provider()
        with session.progress(
            len(template.sections), f"drafting the {template.doc_kind}"
        ) as progress:
            return await run_generate(
                match.path,
                settings=settings.model_copy(update={"template": name}),
                provider=model,
                template=template,
                out=out,
                force=force,
                write=True,
                on_event=progress,
                research=load_research_config() if research or intent.research else None,
            )
    finally:
        await session.aclose()
