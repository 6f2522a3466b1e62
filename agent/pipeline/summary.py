"""Machine-readable summaries: what `--json`, the MCP server and the Runnable return.

One model per command result, with stable keys, so scripts, CI and agents
never parse tables. A key is only ever added, never renamed or removed;
`SCHEMA_VERSION` changes if that promise has to be broken. Imports the
pipeline's result types for annotations only, and never a front end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from agent.core.templates import Template
    from agent.pipeline.batch import BatchResult
    from agent.pipeline.generate import Document
    from agent.review import ReviewReport

SCHEMA_VERSION = 1


class FindingSummary(BaseModel):
    id: str
    severity: str
    section: str | None
    line: int | None
    message: str


class VerdictSummary(BaseModel):
    item: str
    status: str
    section: str | None
    reason: str


class ReviewSummary(BaseModel):
    """A review's outcome: `passed` is what `tidsmith review`'s exit status says."""

    schema_version: int = SCHEMA_VERSION
    document: str | None = None
    tdd: str | None = None
    template: str
    template_version: str
    passed: bool = Field(description="no lint of severity error failed")
    errors: int
    warnings: int
    scores: dict[str, float]
    checklist_basis: str
    findings: list[FindingSummary]
    verdicts: list[VerdictSummary]
    orphans: list[str] = Field(description="TDD headings no section covers")


class GenerateSummary(BaseModel):
    """One written (or drafted) document: where it is and what it cost."""

    schema_version: int = SCHEMA_VERSION
    path: str | None = Field(description="the document written; None when nothing was written")
    tdd: str
    template: str
    template_version: str
    model: str
    sections: int
    calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float | None
    wall_s: float
    research_notes: int | None = Field(description="None when research was off")
    review: ReviewSummary | None


class PartSummary(BaseModel):
    id: str
    title: str
    kind: str


class SectionSummary(BaseModel):
    id: str
    number: int | None
    title: str
    parts: list[PartSummary]


class TemplateSummary(BaseModel):
    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    title: str
    description: str
    doc_kind: str
    max_words: int | None
    source: str
    sections: list[SectionSummary]
    checklist: list[str] = Field(description="checklist item ids")


class BatchDocSummary(BaseModel):
    tdd: str
    output: str | None
    status: str
    reason: str
    sections_done: int
    sections_total: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    wall_s: float


class BatchSummary(BaseModel):
    schema_version: int = SCHEMA_VERSION
    exit_code: int
    wall_s: float
    budget_stopped: bool
    documents: list[BatchDocSummary]


def review_summary(
    report: ReviewReport, *, document: str | Path | None = None, tdd: str | Path | None = None
) -> ReviewSummary:
    errors = report.errors()
    return ReviewSummary(
        document=str(document) if document is not None else None,
        tdd=str(tdd) if tdd is not None else None,
        template=report.template,
        template_version=report.template_version,
        passed=not errors,
        errors=len(errors),
        warnings=sum(f.severity == "warning" for f in report.lints),
        scores=report.scores,
        checklist_basis=report.checklist_basis,
        findings=[
            FindingSummary(
                id=f.id, severity=f.severity, section=f.section, line=f.line, message=f.message
            )
            for f in report.lints
        ],
        verdicts=[
            VerdictSummary(item=v.item, status=v.status, section=v.section, reason=v.reason)
            for v in report.verdicts
        ],
        orphans=report.orphans,
    )


def generate_summary(doc: Document) -> GenerateSummary:
    record = doc.record
    t = record.totals
    research = record.research
    return GenerateSummary(
        path=doc.path,
        tdd=record.tdd_path,
        template=record.template,
        template_version=record.template_version,
        model=record.model,
        sections=len(doc.sections),
        calls=t.calls,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        cached_tokens=t.cached_tokens,
        cost_usd=t.cost_usd,
        wall_s=record.wall_s,
        research_notes=int(research["notes"]) if research is not None else None,
        review=review_summary(doc.review, document=doc.path, tdd=record.tdd_path)
        if doc.review is not None
        else None,
    )


def template_summary(template: Template) -> TemplateSummary:
    return TemplateSummary(
        name=template.name,
        version=template.version,
        title=template.title,
        description=template.description,
        doc_kind=template.doc_kind,
        max_words=template.max_words,
        source=template.source,
        sections=[
            SectionSummary(
                id=s.id,
                number=template.number(s.id),
                title=s.title,
                parts=[PartSummary(id=p.id, title=p.title, kind=p.kind) for p in s.parts],
            )
            for s in template.sections
        ],
        checklist=[c.id for c in template.checklist],
    )


def batch_summary(result: BatchResult) -> BatchSummary:
    return BatchSummary(
        exit_code=result.exit_code,
        wall_s=result.wall_s,
        budget_stopped=result.budget_stopped,
        documents=[
            BatchDocSummary(
                tdd=r.tdd,
                output=r.output,
                status=r.status,
                reason=r.reason,
                sections_done=r.sections_done,
                sections_total=r.sections_total,
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
                cost_usd=r.cost_usd,
                wall_s=r.wall_s,
            )
            for r in result.rows
        ],
    )


def dumps(value: BaseModel | list[Any]) -> str:
    """The JSON a `--json` flag prints: indented, keys in model order, one trailing newline."""
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2) + "\n"
    data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
