"""The review report: verdict and revision records, checklist verdicts from lints, scores.

Pure data and arithmetic over lint results: no model calls, no prompts. Imports
core and the document lints only; never drafting, the pipeline or a front end.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.core.records import CallRecord
from agent.core.templates import Template
from agent.document.lints import Finding, LintResult

VerdictStatus = Literal["pass", "fail", "skipped", "not_reviewed"]
# How a run reviews its document: model checklist and lints, lints only, or not at all.
ReviewMode = Literal["llm", "lint", "off"]


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
        return failing_sections(self.lints, self.verdicts)


def error_sections(findings: Iterable[Finding]) -> set[str]:
    """Sections with an error-severity lint."""
    return {f.section for f in findings if f.severity == "error" and f.section}


def failing_sections(findings: Iterable[Finding], verdicts: Iterable[Verdict]) -> set[str]:
    """Sections with an error-severity lint or a failed checklist verdict."""
    failing = error_sections(findings)
    failing |= {v.section for v in verdicts if v.status == "fail" and v.section}
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
    if result.names:
        scores["tdd_names"] = _ratio(result.names - len(result.unnamed), result.names)
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
            "tdd_names": result.names,
            "tdd_names_unused": len(result.unnamed),
        },
        revisions=revisions or [],
        calls=calls or [],
    )


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 1.0
