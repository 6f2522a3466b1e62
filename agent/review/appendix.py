"""The review for people: the summary lines printed after a run, the Review appendix.

Renders a `ReviewReport`; makes no model calls. Imports this package's report
module only; never drafting, the pipeline or a front end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.review.report import ReviewReport


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
    if "tdd_names" in s:
        line += f"; TDD names used {s['tdd_names']:.0%}"
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


_REVIEW_APPENDIX = re.compile(r"^## Review[ \t]*$", re.M)


def strip_review_appendix(markdown: str) -> str:
    """The document without the "## Review" section `--review-appendix` adds (always last)."""
    starts = [m.start() for m in _REVIEW_APPENDIX.finditer(markdown)]
    return markdown[: starts[-1]].rstrip() + "\n" if starts else markdown
