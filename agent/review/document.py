"""Reviewing a document on disk: its lints and checklist, the TDD it links to, its sections.

`tidsmith review` and eval start here. Imports core, document, providers and
this package's report, checklist and appendix modules; never the pipeline or a
front end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.core.errors import InputError
from agent.core.files import read_bytes
from agent.core.records import CallRecord, Progress, quiet
from agent.core.tdd import Tdd, parse_links
from agent.core.templates import Template
from agent.document.lints import run_lints
from agent.providers.base import Provider
from agent.review.appendix import strip_review_appendix
from agent.review.checklist import llm_review
from agent.review.report import ReviewReport, Verdict, build_report, error_sections


async def review_markdown(
    markdown: str,
    template: Template,
    *,
    tdd: Tdd | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
    codebase_versions: dict[str, str] | None = None,
    provider: Provider | None = None,
    max_tokens: int | None = None,
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
            skip_sections=error_sections(result.findings),
            max_tokens=max_tokens,
            on_event=on_event,
        )
    return build_report(template, result, verdicts, calls)


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
