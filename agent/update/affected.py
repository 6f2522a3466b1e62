"""Which sections of a generated document a TDD change affects, and why.

The TDD is diffed by heading against the one saved at generation time
(`agent.update.state`); a section is affected when its `tdd_refs` name a
changed or removed heading, or the parent of an added one (with a codebase,
also when `check` finds its claims drifted or missing). A section whose text
no longer has its saved hash was edited by hand. No model call: imports core,
document and check only, never providers, draft, the pipeline or a front end.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from agent.check import check_documents
from agent.check.report import message
from agent.core.markdown import parse as parse_markdown
from agent.core.tdd import Tdd, parse_headings
from agent.core.templates import Section, Template, section_heading
from agent.document.lints import norm_title
from agent.update.state import UpdateState, heading_states, text_hash


def diff_headings(state: UpdateState, tdd: Tdd) -> tuple[list[str], list[str], list[str]]:
    """Changed, added and removed heading titles (matched by normalised title)."""
    old = {norm_title(h.title): h for h in state.headings}
    new = {norm_title(h.title): h for h in heading_states(tdd)}
    changed = [h.title for k, h in new.items() if k in old and old[k].sha256 != h.sha256]
    added = [h.title for k, h in new.items() if k not in old]
    removed = [h.title for k, h in old.items() if k not in new]
    return changed, added, removed


def _parents(tdd: Tdd) -> dict[str, str]:
    """Each heading's parent heading title (normalised)."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for h in tdd.headings:
        while stack and stack[-1][0] >= h.level:
            stack.pop()
        if stack:
            parents[norm_title(h.title)] = stack[-1][1]
        stack.append((h.level, norm_title(h.title)))
    return parents


def section_spans(markdown: str, template: Template) -> dict[str, tuple[int, int]]:
    """Each template section's line range [start, end) in the document (its `##` heading on)."""
    heads = [(h.line, h.title) for h in parse_markdown(markdown).headings if h.level == 2]
    wanted = {f"{section_heading(template, s)}": s.id for s in template.sections}
    total = len(markdown.splitlines())
    spans: dict[str, tuple[int, int]] = {}
    for n, (line, title) in enumerate(heads):
        if title in wanted:
            end = heads[n + 1][0] if n + 1 < len(heads) else total
            spans[wanted[title]] = (line, end)
    return spans


def _span_text(lines: list[str], span: tuple[int, int]) -> str:
    return "".join(lines[span[0] : span[1]])


def changes_text(state: UpdateState, tdd: Tdd, headings: list[str]) -> str:
    """A unified diff of each changed heading's text, for the prompt."""
    old = {norm_title(h.title): h.text for h in parse_headings(state.tdd_text)}
    new = {norm_title(h.title): h.text for h in tdd.headings}
    parts: list[str] = []
    for title in headings:
        key = norm_title(title)
        before, after = old.get(key, ""), new.get(key, "")
        if not after:
            parts.append(f'The heading "{title}" was removed.')
            continue
        diff = difflib.unified_diff(
            before.splitlines(), after.splitlines(), "before", "after", lineterm="", n=2
        )
        parts.append(f'Heading "{title}":\n' + "\n".join(diff))
    return "\n\n".join(parts)


def _affected_by_headings(
    state: UpdateState, tdd: Tdd, changed: list[str], added: list[str], removed: list[str]
) -> dict[str, list[str]]:
    touched = {norm_title(t): t for t in [*changed, *removed]}
    parents = _parents(tdd)
    for title in added:
        parent = parents.get(norm_title(title))
        if parent:
            touched.setdefault(parent, title)
    out: dict[str, list[str]] = {}
    for section_id, section in state.sections.items():
        refs = {norm_title(r) for r in section.tdd_refs}
        hits = [touched[k] for k in touched if k in refs]
        if hits:
            out[section_id] = hits
    return out


def _drifted_sections(
    doc: Path, codebase: Path, spans: dict[str, tuple[int, int]]
) -> dict[str, list[str]]:
    """Sections holding claims `check` finds drifted or missing."""
    out: dict[str, list[str]] = {}
    report = check_documents([doc], codebase)
    for f in report.findings:
        if f.verdict not in ("drifted", "missing"):
            continue
        for section_id, (start, end) in spans.items():
            if start < f.claim.line <= end:
                out.setdefault(section_id, []).append(message(f))
    return out


@dataclass
class HeadingChanges:
    """The TDD headings whose text changed, that were added, and that were removed."""

    changed: list[str]
    added: list[str]
    removed: list[str]


@dataclass
class AffectedSections:
    """Where each section is in the document and which of them an update re-drafts."""

    spans: dict[str, tuple[int, int]]  # section id -> line range [start, end)
    edited: list[str]  # sections edited by hand since generation
    affected: dict[str, list[str]]  # section id -> why (the headings or claims)
    drift: dict[str, list[str]]  # section id -> claims the codebase contradicts
    kept: list[str]  # affected but edited by hand, so kept
    todo: list[Section]  # the sections to re-draft, in template order


def find_affected(
    doc: Path,
    markdown: str,
    state: UpdateState,
    template: Template,
    tdd: Tdd,
    changes: HeadingChanges,
    *,
    codebase: Path | None,
    force_sections: bool,
) -> AffectedSections:
    """The sections the heading changes (and, with `codebase`, drifted claims) affect."""
    lines = markdown.splitlines(keepends=True)
    spans = section_spans(markdown, template)
    edited = [
        sid
        for sid, s in state.sections.items()
        if sid in spans and text_hash(_span_text(lines, spans[sid])) != s.sha256
    ]
    affected = _affected_by_headings(state, tdd, changes.changed, changes.added, changes.removed)
    drift: dict[str, list[str]] = {}
    if codebase is not None:
        drift = _drifted_sections(doc, codebase, spans)
        for sid, claims in drift.items():
            affected.setdefault(sid, []).extend(claims)
    affected = {sid: why for sid, why in affected.items() if sid in spans}
    kept = [sid for sid in affected if sid in edited and not force_sections]
    todo = [s for s in template.sections if s.id in affected and s.id not in kept]
    return AffectedSections(spans, edited, affected, drift, kept, todo)
