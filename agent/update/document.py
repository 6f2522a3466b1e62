"""`tidsmith update`: re-draft only the sections a TDD change affects.

The TDD is diffed by heading against the one saved at generation time
(`agent.update.state`); a section is affected when its `tdd_refs` name a
changed or removed heading, or the parent of an added one (with
`--codebase`, also when `check` finds its claims drifted or missing). Only
affected sections are re-drafted, with the change in the prompt; the rest of
the document is kept byte for byte. A section edited by hand since
generation is listed and kept, unless `force_sections`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agent.check import check_documents
from agent.check.report import message
from agent.core.cost import call_cost
from agent.core.errors import InputError, OutputValidationError
from agent.core.paths import run_record_path
from agent.core.records import CallRecord, Usage, totals
from agent.core.settings import load_settings
from agent.core.tdd import Tdd, load_tdd, parse_headings
from agent.core.templates import Template, get_template, section_heading
from agent.core.tokens import count_tokens
from agent.core.write import write_atomic, write_json_atomic
from agent.document.assemble import render_section
from agent.document.lints import norm_title, read_document
from agent.draft.plan import plan_messages, section_schema
from agent.draft.prompting import fill, load_prompt
from agent.draft.sections import structured_call
from agent.providers import (
    ProviderShape,
    default_max_tokens,
    open_provider,
    provider_default_max_tokens,
)
from agent.providers.base import Message, Provider
from agent.update.state import (
    SectionState,
    UpdateState,
    heading_states,
    load_state,
    state_path,
    text_hash,
)

PROMPT_ID = "update_section"


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
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    heads = [
        (t.map[0], tokens[i + 1].content.strip())
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h2" and t.map is not None
    ]
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


def _changes_text(state: UpdateState, tdd: Tdd, headings: list[str]) -> str:
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


def _affected(
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
    markdown: str, doc: Path, codebase: Path, spans: dict[str, tuple[int, int]]
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
    state = load_state(doc)
    if state is None:
        raise InputError(
            f"{doc} has no {state_path(doc).name} beside it: update needs a document tidsmith "
            "wrote (tidsmith check works on any document)"
        )
    template = get_template(state.template)
    new_tdd = load_tdd(tdd if tdd is not None else doc.parent / state.tdd_path)
    changed, added, removed = diff_headings(state, new_tdd)
    lines = markdown.splitlines(keepends=True)
    spans = section_spans(markdown, template)
    edited = [
        sid
        for sid, s in state.sections.items()
        if sid in spans and text_hash(_span_text(lines, spans[sid])) != s.sha256
    ]
    affected = _affected(state, new_tdd, changed, added, removed)
    drift: dict[str, list[str]] = {}
    if codebase is not None:
        drift = _drifted_sections(markdown, doc, codebase, spans)
        for sid, found in drift.items():
            affected.setdefault(sid, []).extend(found)
    affected = {sid: why for sid, why in affected.items() if sid in spans}
    kept = [sid for sid in affected if sid in edited and not force_sections]
    todo = [s for s in template.sections if s.id in affected and s.id not in kept]
    result = UpdateResult(
        doc=str(doc),
        dry_run=dry_run,
        changed=changed,
        added=added,
        removed=removed,
        affected=affected,
        edited=edited,
        kept_edited=kept,
    )
    if not todo:
        return result

    settings = load_settings({k: v for k, v in (overrides or {}).items() if v is not None})
    settings = settings.model_copy(update={"model": settings.model or state.model})
    sections_json = doc.parent / ".tidsmith" / f"{doc.stem}.sections.json"
    try:
        saved: dict[str, Any] = json.loads(sections_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    prompt = load_prompt(PROMPT_ID)

    def messages_for(plan_messages: list[Message], section_id: str) -> list[Message]:
        section = next(s for s in template.sections if s.id == section_id)
        why = [w for w in affected[section_id] if w not in drift.get(section_id, [])]
        changes = _changes_text(state, new_tdd, why)
        if drift.get(section_id):
            changes += "\n\nClaims the codebase contradicts:\n" + "\n".join(
                f"- {m}" for m in drift[section_id]
            )
        previous = json.dumps(saved.get(section_id, {}), ensure_ascii=False)
        user = fill(
            prompt.user, section_heading=section_heading(template, section), changes=changes
        )
        return [
            *plan_messages,
            Message(role="assistant", content=previous),
            Message(role="user", content=user.strip()),
        ]

    if dry_run:
        _estimate(
            result,
            template,
            new_tdd,
            settings.model or state.model,
            todo,
            messages_for,
            settings.max_tokens,
        )
        return result

    own = provider is None
    if provider is None:
        provider = await open_provider(
            settings.model, base_url=settings.base_url, timeout=settings.timeout
        )
    try:
        max_tokens = settings.max_tokens or provider_default_max_tokens(provider)
        plan = plan_messages(
            template,
            new_tdd,
            provider,
            max_tokens=max_tokens,
            schema_in_text=provider.schema_in_text,
            sections=todo,
        )
        limit = asyncio.Semaphore(max(1, min(settings.concurrency, provider.max_concurrency)))

        async def one(section_id: str) -> tuple[str, dict[str, Any], list[CallRecord]]:
            section = next(s for s in template.sections if s.id == section_id)
            model, schema = section_schema(section, plan.cites)
            async with limit:
                parsed, calls, error = await structured_call(
                    provider,
                    prompt,
                    model,
                    messages_for(plan.requests[section_id], section_id),
                    label=section_id,
                    schema_name=f"section_{section_id}",
                    max_tokens=max_tokens,
                    json_schema=schema,
                )
            if parsed is None:
                raise OutputValidationError(
                    f"section {section_heading(template, section)!r} (prompt {PROMPT_ID} "
                    f"v{prompt.version}): the model's update was not usable: {error}; "
                    "nothing was written"
                )
            return section_id, parsed.model_dump(), calls

        done = await asyncio.gather(*(one(s.id) for s in todo))
    finally:
        if own:
            await provider.aclose()

    by_id = {s.id: s for s in template.sections}
    new_lines = list(lines)
    # From the bottom up, so earlier spans keep their line numbers.
    for section_id, content, _ in sorted(done, key=lambda d: -spans[d[0]][0]):
        start, end = spans[section_id]
        trailing = "\n\n" if end < len(lines) else "\n"
        rendered = render_section(template, by_id[section_id], content) + trailing
        new_lines[start:end] = rendered.splitlines(keepends=True)
    updated = "".join(new_lines)
    result.redrafted = [d[0] for d in done]
    result.calls = [c for d in done for c in d[2]]
    result.diff = "".join(
        difflib.unified_diff(
            markdown.splitlines(keepends=True),
            updated.splitlines(keepends=True),
            str(doc),
            str(doc),
        )
    )
    _save(doc, updated, state, new_tdd, template, done, saved, result, prompt.version)
    return result


def _estimate(
    result: UpdateResult,
    template: Template,
    tdd: Tdd,
    model: str,
    todo: list[Any],
    messages_for: Any,
    max_tokens: int | None,
) -> None:
    """Tokens (tiktoken) and price of the calls an update would make; nothing is called."""

    shape = ProviderShape(model)
    limit = max_tokens or default_max_tokens(model)
    plan = plan_messages(
        template, tdd, shape, max_tokens=limit, schema_in_text=shape.schema_in_text, sections=todo
    )
    inputs = 0
    for section in todo:
        inputs += sum(
            count_tokens(m.content) for m in messages_for(plan.requests[section.id], section.id)
        )
        inputs += count_tokens(str(section_schema(section, plan.cites)[1]))
    outputs = limit * len(todo)
    result.estimate_input_tokens = inputs
    result.estimate_output_tokens = outputs
    result.estimate_usd = call_cost(shape, Usage(input_tokens=inputs, output_tokens=outputs))
    result.redrafted = []
    result.affected = {s.id: result.affected[s.id] for s in todo} | {
        k: v for k, v in result.affected.items() if k in result.kept_edited
    }


def _save(
    doc: Path,
    updated: str,
    state: UpdateState,
    tdd: Tdd,
    template: Template,
    done: list[tuple[str, dict[str, Any], list[CallRecord]]],
    saved: dict[str, Any],
    result: UpdateResult,
    prompt_version: str,
) -> None:

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
