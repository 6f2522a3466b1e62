"""Review: checklist verdicts, targeted revision, and the report.

Code checks what code can check exactly (`agent.document.lints`). The model is asked
only about the checklist items that need judgement, and only for sections
whose lints passed. Revision re-drafts only the failing sections, with the
findings in the prompt, a bounded number of rounds.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from agent.core.errors import InputError, OutputValidationError
from agent.core.files import read_bytes
from agent.core.records import CallRecord, Event, Progress, quiet
from agent.core.tdd import Tdd, excerpt, parse_links
from agent.core.templates import ChecklistItem, Template, section_heading
from agent.core.tokens import count_tokens, truncate_tokens
from agent.document.lints import DocSection, Finding, LintResult, run_lints, split_document
from agent.draft.plan import DraftPlan, SectionDraft
from agent.draft.prompting import fence_safe, fill, format_note, load_prompt
from agent.draft.sections import draft_section, structured_call
from agent.providers.base import Message, Provider

REVIEW_PROMPT = "review_checklist"
REVISE_PROMPT = "revise_section"
PROMPT_IDS = (REVIEW_PROMPT, REVISE_PROMPT)

VerdictStatus = Literal["pass", "fail", "skipped", "not_reviewed"]


class Verdict(BaseModel):
    """The model's judgement of one checklist item (or why it was not asked)."""

    item: str = Field(description="checklist item id")
    text: str = ""
    passed: bool
    status: VerdictStatus
    reason: str
    section: str | None = Field(description="the section to fix, when it failed")


class Revision(BaseModel):
    """One section re-drafted in one round, with what was wrong before and after."""

    section: str
    round: int
    findings_before: list[str]
    findings_after: list[str] = Field(default_factory=list)
    content_before: dict[str, Any]
    content_after: dict[str, Any] | None = Field(
        default=None, description="None when the re-draft itself failed"
    )
    error: str = ""


class ReviewReport(BaseModel):
    """What review.json holds: lints, verdicts, the traceability matrix, scores."""

    template: str
    template_version: str = ""
    lints: list[Finding] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    checklist_basis: Literal["llm", "lints"] = "lints"
    matrix: dict[str, list[str]] = Field(
        default_factory=dict, description="TDD heading -> the document sections covering it"
    )
    orphans: list[str] = Field(default_factory=list, description="TDD headings nothing covers")
    scores: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(
        default_factory=dict, description="what the scores are ratios of"
    )
    revisions: list[Revision] = Field(default_factory=list)
    calls: list[CallRecord] = Field(default_factory=list)

    def errors(self) -> list[Finding]:
        return [f for f in self.lints if f.severity == "error"]

    def failing_sections(self) -> set[str]:
        """Sections with an error-severity lint or a failed checklist verdict."""
        failing = {f.section for f in self.errors() if f.section}
        failing |= {v.section for v in self.verdicts if v.status == "fail" and v.section}
        return failing


def lint_checklist(template: Template, findings: list[Finding]) -> list[Verdict]:
    """Checklist verdicts from lints alone: an item fails when its sections have errors.

    Items naming no section fail on document-wide errors (word count, ...).
    """
    verdicts: list[Verdict] = []
    for item in template.checklist:
        scope = set(item.sections)
        bad = [
            f
            for f in findings
            if f.severity == "error" and (f.section in scope if scope else f.section is None)
        ]
        verdicts.append(
            Verdict(
                item=item.id,
                text=item.text,
                passed=not bad,
                status="fail" if bad else "pass",
                reason="; ".join(sorted({f.id for f in bad})) if bad else "no lint errors",
                section=bad[0].section if bad else None,
            )
        )
    return verdicts


def build_report(
    template: Template,
    result: LintResult,
    verdicts: list[Verdict],
    calls: list[CallRecord] | None = None,
    revisions: list[Revision] | None = None,
) -> ReviewReport:
    """The report and its scores from a lint pass and (optional) LLM verdicts."""
    llm = bool(verdicts)
    judged = verdicts if llm else lint_checklist(template, result.findings)
    scores: dict[str, float] = {
        "sections_present": _ratio(result.sections_found, result.sections_total),
        "code_blocks_parse": _ratio(result.code_ok, result.code_checked),
        # An item the model never judged (invalid replies) is not a pass.
        "checklist_pass_rate": _ratio(sum(v.passed for v in judged), len(judged)),
        "lint_errors": float(sum(f.severity == "error" for f in result.findings)),
        "lint_warnings": float(sum(f.severity == "warning" for f in result.findings)),
    }
    if result.topics:
        scores["tdd_coverage"] = _ratio(result.topics - len(result.orphans), result.topics)
    return ReviewReport(
        template=template.name,
        template_version=template.version,
        lints=result.findings,
        verdicts=verdicts,
        checklist_basis="llm" if llm else "lints",
        matrix=result.matrix,
        orphans=result.orphans,
        scores=scores,
        counts={
            "sections_found": result.sections_found,
            "sections_total": result.sections_total,
            "code_blocks_ok": result.code_ok,
            "code_blocks_checked": result.code_checked,
            "tdd_topics": result.topics,
            "tdd_orphans": len(result.orphans),
        },
        revisions=revisions or [],
        calls=calls or [],
    )


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 1.0


# --- LLM review ----------------------------------------------------------------------

BATCH_SIZE = 5
_TOKENIZER_SLACK = 1.3


def _reply_model(items: list[ChecklistItem], section_ids: list[str]) -> type[BaseModel]:
    """The reply schema for one batch: a verdict per item, ids and sections as enums."""
    # Dynamic Literals: the schema lists the only ids a reply may use.
    item_id: Any = Literal[tuple(i.id for i in items)]  # pyright: ignore[reportInvalidTypeForm]
    section: Any = Literal[(*section_ids, "")]  # pyright: ignore[reportInvalidTypeForm]
    verdict = create_model(
        "ChecklistVerdict",
        __config__=ConfigDict(extra="forbid"),
        id=(item_id, Field(description="the checklist item id")),
        reason=(
            str,
            Field(description="one or two sentences: what meets or misses it", max_length=300),
        ),
        passed=(bool, Field(description="true only if the document clearly meets the item")),
        section=(section, Field(description="id of the section to fix; empty when passed")),
    )
    many: Any = list[verdict]
    return create_model(
        "ChecklistReview",
        __config__=ConfigDict(extra="forbid"),
        verdicts=(
            many,
            Field(description="one verdict per item", min_length=len(items), max_length=len(items)),
        ),
    )


def _batch_document(markdown: str, doc: list[DocSection], items: list[ChecklistItem]) -> str:
    wanted = {s for i in items for s in i.sections}
    if any(not i.sections for i in items):
        return markdown
    parts = [s.text.strip() for s in doc if s.section_id in wanted]
    return "\n\n".join(parts) or markdown


async def _review_batch(
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    markdown: str,
    doc: list[DocSection],
    items: list[ChecklistItem],
    label: str,
    *,
    max_tokens: int,
    on_event: Progress,
) -> tuple[list[Verdict], list[CallRecord]]:
    prompt = load_prompt(REVIEW_PROMPT)
    model = _reply_model(items, [s.id for s in template.sections])
    schema = model.model_json_schema()
    room = int((provider.context_window - max_tokens) / _TOKENIZER_SLACK) - 600
    document = truncate_tokens(_batch_document(markdown, doc, items), max(200, room * 2 // 3))
    lines = [f"- {i.id}: {i.text}" for i in items]
    user = fill(
        prompt.user,
        document=fence_safe(document.strip()),
        section_ids=", ".join(s.id for s in template.sections),
        items="\n".join(lines),
        format_note=format_note(prompt, schema, provider.schema_in_text),
    )
    tdd_text = ""
    if tdd is not None:
        budget = room - count_tokens(user)
        if budget >= 200:
            tdd_text = excerpt(tdd, " ".join(i.text for i in items), budget)
    system = fill(prompt.system, doc_name=template.title, tdd_text=fence_safe(tdd_text.strip()))
    messages = [Message(role="system", content=system), Message(role="user", content=user)]

    def check(reply: BaseModel) -> None:
        given = {v["id"] for v in reply.model_dump(mode="json")["verdicts"]}
        missing = [i.id for i in items if i.id not in given]
        if missing:
            raise ValueError(f"no verdict for items {missing}; give one per item")

    parsed, calls, error = await structured_call(
        provider,
        prompt,
        model,
        messages,
        label=label,
        schema_name="checklist_review",
        max_tokens=max_tokens,
        json_schema=schema,
        check=check,
        on_event=on_event,
    )
    if parsed is not None:
        got = {v["id"]: v for v in parsed.model_dump(mode="json")["verdicts"]}
        verdicts: list[Verdict] = []
        for item in items:
            v = got[item.id]
            passed = bool(v["passed"])
            section = v["section"] or None
            if not passed and section is None and item.sections:
                section = item.sections[0]
            verdicts.append(
                Verdict(
                    item=item.id,
                    text=item.text,
                    passed=passed,
                    status="pass" if passed else "fail",
                    reason=str(v["reason"]),
                    section=None if passed else section,
                )
            )
        return verdicts, calls
    on_event(Event(kind="info", detail=f"{label}: the review reply was not usable: {error}"))
    return [
        Verdict(
            item=i.id,
            text=i.text,
            passed=False,
            status="not_reviewed",
            reason=f"not reviewed: the model's reply was not usable after 2 attempts: {error}",
            section=None,
        )
        for i in items
    ], calls


async def llm_review(
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    markdown: str,
    *,
    skip_sections: set[str] | None = None,
    items: list[ChecklistItem] | None = None,
    max_tokens: int = 1200,
    batch_size: int = BATCH_SIZE,
    on_event: Progress = quiet,
) -> tuple[list[Verdict], list[CallRecord]]:
    """Checklist verdicts from the model, one structured call per batch of items.

    Items concerning a section in `skip_sections` (its lints already failed)
    are not asked and come back as `skipped`. A batch whose reply is invalid
    twice comes back as `not_reviewed`, never as passed.
    """
    skip = skip_sections or set()
    items = list(template.checklist if items is None else items)
    doc = split_document(markdown, template)
    verdicts: dict[str, Verdict] = {}
    asked: list[ChecklistItem] = []
    for item in items:
        failed = [s for s in item.sections if s in skip]
        if failed:
            verdicts[item.id] = Verdict(
                item=item.id,
                text=item.text,
                passed=False,
                status="skipped",
                reason=f"not asked: lints already failed in {', '.join(failed)}",
                section=failed[0],
            )
        else:
            asked.append(item)
    batches = [asked[i : i + batch_size] for i in range(0, len(asked), batch_size)]
    limit = asyncio.Semaphore(max(1, provider.max_concurrency))

    async def one(n: int, batch: list[ChecklistItem]) -> tuple[list[Verdict], list[CallRecord]]:
        async with limit:
            label = f"review {n}/{len(batches)}"
            on_event(Event(kind="info", detail=f"{label}: {', '.join(i.id for i in batch)}"))
            return await _review_batch(
                provider,
                template,
                tdd,
                markdown,
                doc,
                batch,
                label,
                max_tokens=max_tokens,
                on_event=on_event,
            )

    results = await asyncio.gather(*(one(n, b) for n, b in enumerate(batches, 1)))
    calls: list[CallRecord] = []
    for batch_verdicts, batch_calls in results:
        verdicts.update({v.item: v for v in batch_verdicts})
        calls.extend(batch_calls)
    return [verdicts[i.id] for i in items], calls


# --- revision ------------------------------------------------------------------------


def section_findings(
    section_id: str, findings: Iterable[Finding], verdicts: Iterable[Verdict]
) -> list[str]:
    """What is wrong with one section, as lines for the revise prompt and the report."""
    lines = [
        f"[{f.id}] {f.message}" + (f" (line {f.line})" if f.line else "")
        for f in findings
        if f.section == section_id and f.severity == "error"
    ]
    lines.extend(
        f"[checklist {v.item}] {v.text}: {v.reason}"
        for v in verdicts
        if v.section == section_id and v.status == "fail"
    )
    return lines


def revise_messages(
    template: Template, plan: DraftPlan, draft: SectionDraft, problems: list[str]
) -> list[Message]:
    """The section's original messages, its previous JSON, and the findings to fix."""
    section = template.section(draft.section_id)
    prompt = load_prompt(REVISE_PROMPT)
    user = fill(
        prompt.user,
        section_heading=section_heading(template, section),
        findings="\n".join(f"- {p}" for p in problems),
    )
    return [
        *plan.requests[section.id],
        Message(role="assistant", content=json.dumps(draft.content, ensure_ascii=False)),
        Message(role="user", content=user),
    ]


async def review_and_revise(
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    plan: DraftPlan,
    drafts: list[SectionDraft],
    render: Callable[[list[SectionDraft]], str],
    *,
    max_revisions: int = 1,
    llm: bool = True,
    max_tokens: int,
    review_max_tokens: int | None = None,
    codebase_versions: dict[str, str] | None = None,
    on_event: Progress = quiet,
) -> tuple[list[SectionDraft], ReviewReport]:
    """Review the drafts, re-draft only failing sections, re-review those; bounded rounds.

    Returns the final drafts (revised ones replaced) and the report, whose
    `revisions` show each revised section's findings and content before and after.
    """
    current = {d.section_id: d for d in drafts}
    order = [d.section_id for d in drafts]
    review_tokens = review_max_tokens or min(max_tokens, 1200)

    def contents() -> dict[str, dict[str, Any]]:
        return {k: d.content for k, d in current.items()}

    def lint() -> tuple[LintResult, str]:
        markdown = render([current[k] for k in order])
        result = run_lints(
            markdown, template, tdd=tdd, sections=contents(), codebase_versions=codebase_versions
        )
        return result, markdown

    result, markdown = lint()
    calls: list[CallRecord] = []
    verdicts: list[Verdict] = []
    if llm and template.checklist:
        verdicts, review_calls = await llm_review(
            provider,
            template,
            tdd,
            markdown,
            skip_sections=_error_sections(result.findings),
            max_tokens=review_tokens,
            on_event=on_event,
        )
        calls.extend(review_calls)
    revisions: list[Revision] = []
    to_fix = _failing(result.findings, verdicts) & set(plan.requests) & set(current)
    limit = asyncio.Semaphore(max(1, provider.max_concurrency))
    revise_version = load_prompt(REVISE_PROMPT).version
    for round_no in range(1, max_revisions + 1):
        if not to_fix:
            break
        problems = {s: section_findings(s, result.findings, verdicts) for s in sorted(to_fix)}

        async def redraft(section_id: str, problems: list[str]) -> SectionDraft:
            async with limit:
                on_event(Event(kind="info", detail=f"revising {section_id}"))
                messages = revise_messages(template, plan, current[section_id], problems)
                return await draft_section(
                    provider,
                    template,
                    template.section(section_id),
                    messages,
                    max_tokens=max_tokens,
                    on_event=on_event,
                    cites=plan.cites,
                )

        ids = list(problems)
        outcomes = await asyncio.gather(
            *(redraft(s, problems[s]) for s in ids), return_exceptions=True
        )
        revised: set[str] = set()
        this_round: list[Revision] = []
        for section_id, outcome in zip(ids, outcomes, strict=True):
            before = current[section_id]
            revision = Revision(
                section=section_id,
                round=round_no,
                findings_before=problems[section_id],
                content_before=before.content,
            )
            if isinstance(outcome, OutputValidationError):
                calls.extend(getattr(outcome, "calls", []))
                revision.error = str(outcome)
                revision.findings_after = problems[section_id]
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                revise_version = load_prompt(REVISE_PROMPT).version
                new_calls = [
                    c.model_copy(
                        update={"prompt_id": REVISE_PROMPT, "prompt_version": revise_version}
                    )
                    for c in outcome.calls
                ]
                calls.extend(new_calls)
                current[section_id] = outcome.model_copy(
                    update={"calls": [*before.calls, *new_calls]}
                )
                revision.content_after = outcome.content
                revised.add(section_id)
            this_round.append(revision)
        result, markdown = lint()
        if llm and revised:
            items = [i for i in template.checklist if set(i.sections) & revised]
            if items:
                new, review_calls = await llm_review(
                    provider,
                    template,
                    tdd,
                    markdown,
                    skip_sections=_error_sections(result.findings) & revised,
                    items=items,
                    max_tokens=review_tokens,
                    on_event=on_event,
                )
                calls.extend(review_calls)
                by_item = {v.item: v for v in new}
                verdicts = [by_item.get(v.item, v) for v in verdicts]
        for revision in this_round:
            if revision.content_after is not None:
                revision.findings_after = section_findings(
                    revision.section, result.findings, verdicts
                )
        revisions.extend(this_round)
        to_fix = _failing(result.findings, verdicts) & revised
    report = build_report(template, result, verdicts, calls, revisions)
    return [current[k] for k in order], report


def _error_sections(findings: Iterable[Finding]) -> set[str]:
    return {f.section for f in findings if f.severity == "error" and f.section}


def _failing(findings: Iterable[Finding], verdicts: Iterable[Verdict]) -> set[str]:
    failing = _error_sections(findings)
    failing |= {v.section for v in verdicts if v.status == "fail" and v.section}
    return failing


async def review_markdown(
    markdown: str,
    template: Template,
    *,
    tdd: Tdd | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
    codebase_versions: dict[str, str] | None = None,
    provider: Provider | None = None,
    max_tokens: int = 1200,
    on_event: Progress = quiet,
) -> ReviewReport:
    """Review an existing document: lints, and checklist verdicts when given a provider.

    A Review appendix from an earlier review is left out: its coverage table
    names every TDD heading and would count as covering them.
    """
    markdown = strip_review_appendix(markdown)
    result = run_lints(
        markdown, template, tdd=tdd, sections=sections, codebase_versions=codebase_versions
    )
    verdicts: list[Verdict] = []
    calls: list[CallRecord] = []
    if provider is not None and template.checklist:
        verdicts, calls = await llm_review(
            provider,
            template,
            tdd,
            markdown,
            skip_sections=_error_sections(result.findings),
            max_tokens=max_tokens,
            on_event=on_event,
        )
    return build_report(template, result, verdicts, calls)


_REVIEW_APPENDIX = re.compile(r"^## Review[ \t]*$", re.M)


def strip_review_appendix(markdown: str) -> str:
    """The document without the "## Review" section `--review-appendix` adds (always last)."""
    starts = [m.start() for m in _REVIEW_APPENDIX.finditer(markdown)]
    return markdown[: starts[-1]].rstrip() + "\n" if starts else markdown


# --- human output --------------------------------------------------------------------


def summary_lines(report: ReviewReport, limit: int = 6) -> list[str]:
    """The short human summary printed at the end of generate and review."""
    errors = report.errors()
    warnings = [f for f in report.lints if f.severity == "warning"]
    s = report.scores
    basis = "model" if report.checklist_basis == "llm" else "lints"
    line = (
        f"review: {len(errors)} lint errors, {len(warnings)} warnings; "
        f"checklist {s.get('checklist_pass_rate', 0.0):.0%} passed ({basis}); "
        f"sections {s.get('sections_present', 0.0):.0%} present; "
        f"code blocks {s.get('code_blocks_parse', 0.0):.0%} parse"
    )
    if "tdd_coverage" in s:
        line += f"; TDD coverage {s['tdd_coverage']:.0%} ({len(report.orphans)} orphans)"
    lines = [line]
    for f in errors[:limit]:
        place = f.section or f.where or "document"
        lines.append(f"  {f.id} [{place}]: {f.message}")
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more errors (see review.json)")
    for v in report.verdicts:
        if v.status in {"fail", "not_reviewed"}:
            lines.append(f"  checklist {v.item} {v.status} [{v.section or '-'}]: {v.reason}")
    for r in report.revisions:
        outcome = (
            f"failed to re-draft: {r.error}"
            if r.content_after is None
            else f"{len(r.findings_before)} -> {len(r.findings_after)} problems"
        )
        lines.append(f"  revised {r.section} (round {r.round}): {outcome}")
    return lines


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or " "


def _table(title: str, header: list[str], rows: Iterable[Iterable[object]]) -> list[str]:
    lines = [f"### {title}", "", f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def review_appendix(report: ReviewReport) -> str:
    """A "Review" section for the end of the document (--review-appendix)."""
    s = report.scores
    out = ["## Review", "", *(f"- {k.replace('_', ' ')}: {v:g}" for k, v in s.items()), ""]
    if report.lints:
        header = ["Severity", "Lint", "Section", "Message"]
        rows = [(f.severity, f.id, f.section or f.where or "-", f.message) for f in report.lints]
        out += _table("Lints", header, rows)
    if report.verdicts:
        rows = [(v.text or v.item, v.status, v.reason) for v in report.verdicts]
        out += _table("Checklist", ["Item", "Verdict", "Reason"], rows)
    if report.matrix:
        rows = [(h, ", ".join(secs) or "not covered") for h, secs in report.matrix.items()]
        out += _table("TDD Coverage", ["TDD heading", "Covered by"], rows)
    if report.revisions:
        header = ["Section", "Round", "Before", "After"]
        rows = [
            (
                r.section,
                r.round,
                "; ".join(r.findings_before),
                "; ".join(r.findings_after) or "fixed",
            )
            for r in report.revisions
        ]
        out += _table("Revisions", header, rows)
    return "\n".join(out).rstrip() + "\n"


def find_tdd_for(doc_path: Path, markdown: str) -> Path | None:
    """The TDD a document links to (Source TDD / Related TDD), when that file exists."""
    for link in parse_links(markdown):
        if link.kind != "tdd" or "://" in link.target:
            continue
        candidate = (doc_path.parent / link.target.split("#")[0]).resolve()
        if candidate.is_file():
            return candidate
    return None


def load_sections_json(doc_path: Path) -> dict[str, dict[str, Any]] | None:
    """The section models `generate` saved beside a document, if any (for tdd_refs)."""
    path = doc_path.parent / ".tidsmith" / f"{doc_path.stem}.sections.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(read_bytes(path, 16 * 1024 * 1024, "sections file"))
    except (InputError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = [
    "PROMPT_IDS",
    "ReviewReport",
    "Revision",
    "Verdict",
    "llm_review",
    "review_and_revise",
    "review_appendix",
    "review_markdown",
    "summary_lines",
]
