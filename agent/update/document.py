"""`tidsmith update`: re-draft only the sections a TDD change affects.

The TDD is diffed by heading against the one saved at generation time
(`agent.update.state`); a section is affected when its `tdd_refs` name a
changed or removed heading, or the parent of an added one (with
`--codebase`, also when `check` finds its claims drifted or missing). Only
affected sections are re-drafted, with the change in the prompt; the rest of
the document is kept byte for byte. A section edited by hand since
generation is listed and kept, unless `force_sections`.

This module runs those steps (`agent.update.affected` finds the sections,
`agent.update.redraft` calls the model) and writes the result. Imports core,
providers, document, draft and check; never the pipeline or a front end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agent.core.errors import InputError
from agent.core.paths import run_record_path
from agent.core.records import CallRecord, totals
from agent.core.settings import Settings, load_settings
from agent.core.tdd import Tdd, load_tdd
from agent.core.templates import Template, get_template
from agent.core.write import write_atomic, write_json_atomic
from agent.document.assemble import render_section
from agent.document.lints import read_document
from agent.draft.prompting import load_prompt
from agent.providers.base import Provider
from agent.update.affected import (
    AffectedSections,
    HeadingChanges,
    diff_headings,
    find_affected,
    section_spans,
)
from agent.update.redraft import (
    PROMPT_ID,
    Redrafted,
    SectionMessages,
    estimate_redraft,
    redraft_sections,
)
from agent.update.state import (
    SectionState,
    UpdateState,
    heading_states,
    load_state,
    state_path,
    text_hash,
)

__all__ = [
    "PROMPT_ID",
    "UpdateResult",
    "aupdate_document",
    "diff_headings",
    "print_update",
    "section_spans",
    "totals_line",
    "update_document",
]


class UpdateResult(BaseModel):
    doc: str
    dry_run: bool
    changed: list[str] = Field(default_factory=list, description="TDD headings whose text changed")
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    affected: dict[str, list[str]] = Field(
        default_factory=dict, description="section id -> why (the headings or claims)"
    )
    edited: list[str] = Field(default_factory=list, description="sections edited by hand")
    kept_edited: list[str] = Field(default_factory=list, description="affected but hand-edited")
    redrafted: list[str] = Field(default_factory=list)
    diff: str = ""
    estimate_input_tokens: int = 0
    estimate_output_tokens: int = 0
    estimate_usd: float | None = 0.0
    calls: list[CallRecord] = Field(default_factory=list)


def update_document(doc: Path, **options: Any) -> UpdateResult:
    return asyncio.run(aupdate_document(doc, **options))


async def aupdate_document(
    doc: Path,
    *,
    tdd: Path | None = None,
    codebase: Path | None = None,
    dry_run: bool = False,
    force_sections: bool = False,
    overrides: dict[str, Any] | None = None,
    provider: Provider | None = None,
) -> UpdateResult:
    """Update `doc` after its TDD changed; see the module docstring."""
    markdown = read_document(doc)
    state = _load_state(doc)
    template = get_template(state.template)
    new_tdd = load_tdd(tdd if tdd is not None else doc.parent / state.tdd_path)
    changes = HeadingChanges(*diff_headings(state, new_tdd))
    sections = find_affected(
        doc,
        markdown,
        state,
        template,
        new_tdd,
        changes,
        codebase=codebase,
        force_sections=force_sections,
    )
    result = UpdateResult(
        doc=str(doc),
        dry_run=dry_run,
        changed=changes.changed,
        added=changes.added,
        removed=changes.removed,
        affected=sections.affected,
        edited=sections.edited,
        kept_edited=sections.kept,
    )
    if not sections.todo:
        return result
    settings = _settings(overrides, state)
    saved = _saved_sections(doc)
    prompt = load_prompt(PROMPT_ID)
    messages = SectionMessages(state, new_tdd, template, sections, saved, prompt)
    if dry_run:
        _estimate(result, messages, settings, state)
        return result
    done = await redraft_sections(messages, settings, provider)
    updated = _splice(markdown, template, sections, done)
    result.redrafted = [d[0] for d in done]
    result.calls = [c for d in done for c in d[2]]
    result.diff = _unified_diff(doc, markdown, updated)
    _save(doc, updated, state, new_tdd, template, done, saved, result, prompt.version)
    return result


def _unified_diff(doc: Path, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), str(doc), str(doc)
        )
    )


def _load_state(doc: Path) -> UpdateState:
    state = load_state(doc)
    if state is None:
        raise InputError(
            f"{doc} has no {state_path(doc).name} beside it: update needs a document tidsmith "
            "wrote (tidsmith check works on any document)"
        )
    return state


def _settings(overrides: dict[str, Any] | None, state: UpdateState) -> Settings:
    """The settings with the command's overrides; the model the document was written with."""
    settings = load_settings({k: v for k, v in (overrides or {}).items() if v is not None})
    return settings.model_copy(update={"model": settings.model or state.model})


def _saved_sections(doc: Path) -> dict[str, Any]:
    """Each section's content as last rendered (`.tidsmith/<name>.sections.json`)."""
    sections_json = doc.parent / ".tidsmith" / f"{doc.stem}.sections.json"
    try:
        saved: dict[str, Any] = json.loads(sections_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    return saved


def _estimate(
    result: UpdateResult, messages: SectionMessages, settings: Settings, state: UpdateState
) -> None:
    """A dry run: the estimate of the calls, and the sections they would re-draft."""
    estimate = estimate_redraft(messages, settings.model or state.model, settings.max_tokens)
    todo = messages.sections.todo
    result.estimate_input_tokens = estimate.input_tokens
    result.estimate_output_tokens = estimate.output_tokens
    result.estimate_usd = estimate.usd
    result.redrafted = []
    result.affected = {s.id: result.affected[s.id] for s in todo} | {
        k: v for k, v in result.affected.items() if k in result.kept_edited
    }


def _splice(
    markdown: str, template: Template, sections: AffectedSections, done: list[Redrafted]
) -> str:
    """The document with each re-drafted section rendered in place of the old one."""
    lines = markdown.splitlines(keepends=True)
    spans = sections.spans
    by_id = {s.id: s for s in template.sections}
    new_lines = list(lines)
    # From the bottom up, so earlier spans keep their line numbers.
    for section_id, content, _ in sorted(done, key=lambda d: -spans[d[0]][0]):
        start, end = spans[section_id]
        trailing = "\n\n" if end < len(lines) else "\n"
        rendered = render_section(template, by_id[section_id], content) + trailing
        new_lines[start:end] = rendered.splitlines(keepends=True)
    return "".join(new_lines)


def _save(
    doc: Path,
    updated: str,
    state: UpdateState,
    tdd: Tdd,
    template: Template,
    done: list[Redrafted],
    saved: dict[str, Any],
    result: UpdateResult,
    prompt_version: str,
) -> None:
    """Write the document, its sections, the update state and the run record's update entry."""
    by_id = {s.id: s for s in template.sections}
    sections = dict(state.sections)
    for section_id, content, _ in done:
        saved[section_id] = content
        sections[section_id] = SectionState(
            sha256=text_hash(render_section(template, by_id[section_id], content)),
            tdd_refs=[str(r) for r in content.get("tdd_refs", [])],
        )
    new_state = state.model_copy(
        update={
            "tdd_sha256": tdd.sha256,
            "tdd_text": tdd.text,
            "headings": heading_states(tdd),
            "sections": sections,
        }
    )
    record_path = run_record_path(doc)
    try:
        record: dict[str, Any] = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    record.setdefault("updates", []).append(
        {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "tdd_path": tdd.path,
            "tdd_sha256": tdd.sha256,
            "prompt": {PROMPT_ID: prompt_version},
            "changed_headings": result.changed,
            "added_headings": result.added,
            "removed_headings": result.removed,
            "sections": result.redrafted,
            "kept_edited": result.kept_edited,
            "calls": [c.model_dump() for c in result.calls],
            "totals": totals(result.calls).model_dump(),
        }
    )
    # The document is this run's input, rewritten on purpose: that is what update does.
    write_atomic(doc, updated, force=True, updates=True)
    write_json_atomic(doc.parent / ".tidsmith" / f"{doc.stem}.sections.json", saved, updates=True)
    write_json_atomic(state_path(doc), new_state, updates=True)
    write_json_atomic(record_path, record, updates=True)


def print_update(result: UpdateResult) -> None:
    """What update found and did, on stdout: the headings, the sections, the diff."""
    say = print
    if not (result.changed or result.added or result.removed or result.affected):
        say(f"{result.doc}: the TDD has not changed since it was generated; nothing to update")
        return
    for label, titles in (
        ("changed", result.changed),
        ("added", result.added),
        ("removed", result.removed),
    ):
        if titles:
            say(f"TDD headings {label}: " + "; ".join(titles))
    for section_id, why in result.affected.items():
        state = (
            "kept (edited by hand; --force-sections re-drafts it)"
            if section_id in result.kept_edited
            else ""
        )
        say(f"  {section_id}: " + "; ".join(why) + (f" - {state}" if state else ""))
    if not result.affected:
        say("no section names the changed headings in its tdd_refs; nothing re-drafted")
    if result.dry_run:
        cost = "unknown price" if result.estimate_usd is None else f"${result.estimate_usd:.4f}"
        count = len(result.affected) - len(result.kept_edited)
        say(
            f"dry run: {count} sections would be re-drafted, about "
            f"{result.estimate_input_tokens} input + {result.estimate_output_tokens} output "
            f"tokens at most, {cost}"
        )
        return
    if result.diff:
        say(result.diff.rstrip("\n"))
    spent = totals_line(result.calls)
    say(f"re-drafted {len(result.redrafted)} sections ({spent}); wrote {result.doc}")


def totals_line(calls: list[CallRecord]) -> str:
    t = totals(calls)
    cost = "unknown price" if t.cost_usd is None else f"${t.cost_usd:.4f}"
    return f"{t.calls} calls, {t.input_tokens} input + {t.output_tokens} output tokens, {cost}"
