"""What each chat action does: /load, /generate, /revise, /review, /save, … on a `ChatState`.

One function per action, reached from a slash command or a natural-language
request alike (`agent.chat.session` routes lines here). Must not import the
session, the terminal loop or prompt_toolkit.
"""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path

from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from agent.chat.edits import REVISE_PROMPT, assemble_markdown, replace_section
from agent.chat.intent import resolve_section
from agent.chat.state import ChatState, Pending, Version
from agent.core.paths import default_output_path, run_record_path
from agent.core.records import CallRecord, totals
from agent.core.tdd import load_tdd
from agent.core.templates import Section, Template, builtin_names, get_template, section_heading
from agent.core.write import write_atomic, write_json_atomic
from agent.document.assemble import render_section
from agent.document.lints import lint_document
from agent.draft.plan import SectionDraft
from agent.draft.prompting import fill, load_prompt
from agent.draft.sections import draft_section
from agent.pipeline.generate import draft_plan, run_generate
from agent.providers import parse_model_id, provider_default_max_tokens
from agent.providers.base import Message
from research.config import load_research_config

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


def show_help(state: ChatState) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    for name, (args, text) in COMMANDS.items():
        table.add_row(f"{name} {args}".strip(), text)
    state.console.print(table)
    research = "on" if state.research else "off"
    state.console.print(
        "Or just ask: 'Please create a TID for Data Export based on "
        "0xcc/tdds/002_FTDD|Data_Export.md', 'Research first: … then create the TID for …', "
        "'revise section 2 to add the test utilities'.\n"
        "Multi-line input: end a line with \\ to continue it (or Esc then Enter in a "
        "terminal). Tab completes commands and file paths. Ctrl-C cancels a running step; "
        f"Ctrl-D or /quit leaves. Template: {state.template_name}; research: {research}.",
        highlight=False,
        markup=False,
    )


# --- settings for the next document -----------------------------------------------------


def load(state: ChatState, arg: str) -> None:
    if not arg:
        state.say("usage: /load PATH (a TDD markdown file)")
        return
    match = state.resolve(arg)
    if match.path is None:
        state.say(match.message)
        return
    tdd = load_tdd(match.path)  # checks it now, not at /generate
    state.tdd_path = match.path
    state.say(f"loaded {match.path} ({tdd.feature}, {len(tdd.headings)} headings)")


def set_research(state: ChatState, arg: str) -> None:
    if arg.lower() not in {"on", "off"}:
        state.say("usage: /research on|off")
        return
    state.research = arg.lower() == "on"
    state.say(f"research {'on' if state.research else 'off'}")


def set_template(state: ChatState, arg: str) -> None:
    if not arg:
        state.say(f"usage: /template {'|'.join(builtin_names())} (or a template YAML path)")
        return
    template = get_template(arg)  # a bad name is a one-line error here
    state.template_name = arg
    later = " (the current document keeps its template)" if state.current else ""
    state.say(f"template {template.name}: the next /generate writes a {template.title}{later}")


async def set_model(state: ChatState, arg: str) -> None:
    if not arg:
        label = state.provider_label
        state.say(f"model: {label or state.settings.model or 'default'}; usage: /model ID")
        return
    parse_model_id(arg)  # a bad id fails now, not at the next call
    await state.aclose()
    state.settings = state.settings.model_copy(update={"model": arg})
    state.say(f"model {arg} (opened at the next request)")


# --- changing the document ----------------------------------------------------------------


async def generate(
    state: ChatState, ref: str = "", *, template: str | None = None, research: bool | None = None
) -> None:
    match = state.resolve(ref)
    if match.path is None:
        if match.candidates:
            # The next line may answer the question with a name, number or "the first".
            state.pending = Pending(
                candidates=match.candidates, template=template, research=research
            )
        state.say(match.message)
        return
    tdd = load_tdd(match.path)
    if template:
        state.template_name = template
    if research is not None:
        state.research = research
    chosen = get_template(state.template_name)
    state.tdd_path = match.path
    settings = state.settings.model_copy(update={"template": state.template_name})
    provider = await state.provider()
    started = time.perf_counter()
    with state.progress(len(chosen.sections), f"drafting the {chosen.doc_kind}") as progress:
        doc = await run_generate(
            match.path,
            settings=settings,
            provider=provider,
            template=chosen,
            write=False,
            on_event=progress,
            # The sources in tidsmith.toml, as `generate --research` uses them.
            research=load_research_config() if state.research else None,
        )
    state.push(Version(doc=doc, template=chosen))
    state.session_calls.extend(doc.record.calls)
    t = doc.record.totals
    target = default_output_path(tdd, chosen.doc_kind)
    state.say(
        f"drafted the {chosen.doc_kind} for {tdd.feature}: {len(doc.sections)} sections in "
        f"{time.perf_counter() - started:.1f}s ({t.calls} calls, {t.input_tokens} input + "
        f"{t.output_tokens} output tokens, {_money(t.cost_usd)}). "
        f"/show to read it, /save to write {_shown(target, state.cwd)}"
    )


async def revise(state: ChatState, ref: str, instruction: str) -> None:
    version = state.need_doc()
    if version is None:
        return
    template = version.template
    section = resolve_section(template, ref)
    if section is None:
        state.say(f"which section? {_section_list(template)}")
        return
    if not instruction:
        state.say(f"what should change in {section_heading(template, section)}?")
        return
    doc = version.doc
    tdd = load_tdd(Path(doc.record.tdd_path))
    provider = await state.provider()
    max_tokens = state.settings.max_tokens or provider_default_max_tokens(provider)
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
    messages = [
        *plan.requests[section.id],
        *_revision_request(state, template, section, previous, instruction),
    ]
    heading = section_heading(template, section)
    with state.progress(1, f"revising {heading}") as progress:
        draft = await draft_section(
            provider,
            template,
            section,
            messages,
            max_tokens=max_tokens,
            on_event=progress,
            cites=plan.cites,
            facts=plan.facts(section.id),
        )
    state.session_calls.extend(draft.calls)
    revised = Version(doc=replace_section(doc, template, tdd, draft), template=template)
    if revised.doc.markdown == doc.markdown:
        # Nothing to undo or diff, but the calls still count.
        state.current = revised
        state.say(f"re-drafted {heading}: the model returned it unchanged")
        return
    state.push(revised)
    state.remember(f"tidsmith: revised {heading}")
    state.console.print(f"re-drafted {heading} (/undo goes back):", highlight=False)
    diff(state)


def _revision_request(
    state: ChatState, template: Template, section: Section, previous: SectionDraft, instruction: str
) -> list[Message]:
    """The section's previous answer, then the user's instruction in the revise prompt."""
    prompt = load_prompt(REVISE_PROMPT)
    ask = fill(
        prompt.user,
        section_heading=section_heading(template, section),
        instruction=instruction.strip(),
        conversation=state.conversation(),
    )
    return [
        Message(role="assistant", content=json.dumps(previous.content, ensure_ascii=False)),
        Message(role="user", content=ask.strip()),
    ]


def undo(state: ChatState) -> None:
    if not state.history:
        state.say("nothing to undo")
        return
    state.current = state.history.pop()
    state.say(f"back to the previous version ({len(state.history)} older versions kept)")


# --- reading the document -------------------------------------------------------------------


def show(state: ChatState, ref: str = "") -> None:
    version = state.need_doc()
    if version is None:
        return
    if not ref:
        state.console.print(Markdown(version.doc.markdown))
        return
    section = resolve_section(version.template, ref)
    if section is None:
        state.say(f"no section {ref!r}: {_section_list(version.template)}")
        return
    content = next(d.content for d in version.doc.sections if d.section_id == section.id)
    state.console.print(Markdown(render_section(version.template, section, content)))


def diff(state: ChatState) -> None:
    if state.current is None or not state.history:
        state.say("nothing to compare yet: /diff shows what the last change did")
        return
    before, after = state.history[-1].doc.markdown, state.current.doc.markdown
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
        state.say("no differences between the last two versions")
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
    state.console.print(text, end="")


def review(state: ChatState) -> None:
    version = state.need_doc()
    if version is None:
        return
    tdd = load_tdd(Path(version.doc.record.tdd_path))
    findings = lint_document(
        version.doc.markdown,
        version.template,
        tdd=tdd,
        sections={d.section_id: d.content for d in version.doc.sections},
    )
    if not findings:
        state.say("review: the lints found no problems")
        return
    errors = sum(f.severity == "error" for f in findings)
    state.say(
        f"review: {len(findings)} findings ({errors} errors); "
        "/revise SECTION INSTRUCTION fixes one section"
    )
    for f in findings[:REVIEW_SHOWN]:
        where = f.where or f.section or "document"
        line = f" line {f.line}" if f.line else ""
        state.console.print(
            f"- {f.severity} {where}{line}: {f.message} [{f.id}]", highlight=False, markup=False
        )
    if len(findings) > REVIEW_SHOWN:
        state.console.print(f"… and {len(findings) - REVIEW_SHOWN} more", highlight=False)


def show_cost(state: ChatState) -> None:
    rows: list[tuple[str, list[CallRecord]]] = []
    if state.current is not None:
        rows.append(("this document", state.current.doc.record.calls))
    rows.append(("this session", state.session_calls))
    for label, calls in rows:
        t = totals(calls)
        state.console.print(
            f"{label}: {t.calls} calls, {t.input_tokens} input + {t.output_tokens} output "
            f"tokens ({t.cached_tokens} cached), {_money(t.cost_usd)}",
            highlight=False,
        )


# --- writing the document -------------------------------------------------------------------


async def save(state: ChatState, arg: str = "", *, force: bool = False) -> Path | None:
    version = state.need_doc()
    if version is None:
        return None
    doc, template = version.doc, version.template
    tdd = load_tdd(Path(doc.record.tdd_path))
    out = state.cwd / arg if arg else None  # an absolute `arg` replaces cwd
    path = default_output_path(tdd, template.doc_kind, out)
    if not out and doc.path:
        path = Path(doc.path)
    ours = doc.path is not None and Path(doc.path) == path and _unchanged_on_disk(state, path)
    if path.exists() and not force and not ours:
        if not await state.confirm(f"{_shown(path, state.cwd)} exists; overwrite it?"):
            state.say("not saved; /save PATH writes somewhere else")
            return None
        force = True
    markdown = assemble_markdown(doc, template, tdd, path)
    record = doc.record.model_copy(update={"output_path": str(path)})
    write_atomic(path, markdown, force=force or ours)
    write_json_atomic(run_record_path(path), record)
    write_json_atomic(
        run_record_path(path).with_name(f"{path.stem}.sections.json"),
        {d.section_id: d.content for d in doc.sections},
    )
    saved = doc.model_copy(update={"markdown": markdown, "path": str(path), "record": record})
    state.current = Version(doc=saved, template=template)
    state.saved_markdown = markdown
    state.say(f"saved {_shown(path, state.cwd)}")
    return path


def _unchanged_on_disk(state: ChatState, path: Path) -> bool:
    """True when `path` holds what this session last saved there (saving again is safe)."""
    try:
        return path.read_text(encoding="utf-8") == state.saved_markdown
    except OSError:
        return False


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
