"""The lint pass: every deterministic lint over a document, with the counts scores use.

The entry point over the lint families, which must not import it; like them, it
imports nothing above `agent.core`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agent.core.tdd import Tdd
from agent.core.templates import Template
from agent.document.lints.code import lint_code
from agent.document.lints.content import lint_markup, lint_placeholders
from agent.document.lints.coverage import NAMES_FLOOR, coverage_matrix, unnamed
from agent.document.lints.dependencies import lint_dependencies
from agent.document.lints.reading import Finding, code_blocks, finding, split_document
from agent.document.lints.structure import (
    lint_not_applicable,
    lint_sections,
    lint_spec,
    lint_targets,
)


class LintResult(BaseModel):
    """The findings of a lint pass and the counts the scores are made of."""

    findings: list[Finding]
    sections_found: int
    sections_total: int
    code_checked: int
    code_ok: int
    matrix: dict[str, list[str]] = Field(default_factory=dict)
    orphans: list[str] = Field(default_factory=list)
    topics: int = 0
    # The TDD's CamelCase names and source files, and those the document never uses.
    names: int = 0
    unnamed: list[str] = Field(default_factory=list)


def run_lints(
    markdown: str,
    template: Template,
    *,
    tdd: Tdd | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
    codebase_versions: dict[str, str] | None = None,
) -> LintResult:
    """All deterministic lints, with the counts the scores are made of."""
    doc = split_document(markdown, template)
    blocks, fence_findings = code_blocks(markdown, doc)
    code_findings, checked, ok = lint_code(blocks)
    findings = [
        *lint_sections(markdown, template, doc),
        *fence_findings,
        *code_findings,
        *lint_placeholders(markdown, doc, blocks),
        *lint_markup(markdown, doc),
        *lint_spec(markdown, template, doc, tdd),
        *lint_not_applicable(template, doc, tdd),
        *lint_targets(template, doc),
        *lint_dependencies(blocks, doc, codebase_versions),
    ]
    matrix: dict[str, list[str]] = {}
    orphans: list[str] = []
    topics = 0
    missing: list[str] = []
    names = 0
    if tdd is not None:
        matrix, orphans = coverage_matrix(tdd, markdown, template, sections)
        topics = len(matrix)
        findings.extend(
            finding("coverage.orphan", f"no section covers the TDD's {o!r}", severity="warning")
            for o in orphans
        )
        missing, names = unnamed(tdd, markdown)
        if names - len(missing) < NAMES_FLOOR * names:
            shown = ", ".join(missing[:12]) + (", ..." if len(missing) > 12 else "")
            findings.append(
                finding(
                    "coverage.names",
                    f"the document never names {len(missing)} of the TDD's {names} types, "
                    f"components and source files: {shown}",
                    severity="warning",
                )
            )
    return LintResult(
        findings=findings,
        sections_found=len({s.section_id for s in doc if s.section_id}),
        sections_total=len(template.sections),
        code_checked=checked,
        code_ok=ok,
        matrix=matrix,
        orphans=orphans,
        topics=topics,
        names=names,
        unnamed=missing,
    )


def lint_document(
    markdown: str,
    template: Template,
    *,
    tdd: Tdd | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
    codebase_versions: dict[str, str] | None = None,
) -> list[Finding]:
    """Every deterministic finding for a document (no LLM): `run_lints` without the counts."""
    return run_lints(
        markdown, template, tdd=tdd, sections=sections, codebase_versions=codebase_versions
    ).findings
