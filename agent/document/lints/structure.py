"""Structure lints: template sections present, in order and not empty; spec rules; targets.

Imports `agent.core` and the shared reading module only.
"""

from __future__ import annotations

import re

from agent.core.tdd import Tdd, applies
from agent.core.templates import Template, opens_not_applicable, section_heading
from agent.document.lints.reading import (
    DocSection,
    Finding,
    count_sentences,
    count_words,
    finding,
    line_of,
    markdown_tables,
    prose_lines,
)


def lint_sections(markdown: str, template: Template, sections: list[DocSection]) -> list[Finding]:
    """Every template section present, in template order, and not empty."""
    findings: list[Finding] = []
    found = {s.section_id: s for s in sections if s.section_id}
    for s in template.sections:
        if s.id not in found:
            findings.append(
                finding(
                    "section.missing",
                    f"no section {section_heading(template, s)!r}",
                    section_id=s.id,
                )
            )
    order = [t.id for t in template.sections]
    last = -1
    for s in sections:
        if not s.section_id:
            continue
        index = order.index(s.section_id)
        if index < last:
            findings.append(
                finding(
                    "section.order",
                    f"{s.title!r} comes after a section the template puts later",
                    section=s,
                    line=line_of(markdown, s.start),
                )
            )
        last = max(last, index)
        content = [line for line in prose_lines(s.text) if line.strip() and line.strip() != "---"]
        if not content:
            findings.append(
                finding(
                    "section.empty",
                    f"{s.title!r} has a heading but no content",
                    section=s,
                    line=line_of(markdown, s.start),
                )
            )
    return findings


def lint_spec(
    markdown: str, template: Template, sections: list[DocSection], tdd: Tdd | None
) -> list[Finding]:
    """Word cap, TL;DR length, numeric performance targets, ADR references."""
    findings: list[Finding] = []
    if template.max_words:
        words = count_words(markdown)
        if words > template.max_words:
            findings.append(
                finding(
                    "spec.word-count",
                    f"{words} words, over the template's {template.max_words}",
                )
            )
    by_id = {s.section_id: s for s in sections if s.section_id}
    for s in template.sections:
        if ("tl;dr" in s.title.lower() or s.id == "tldr") and s.id in by_id:
            n = count_sentences(by_id[s.id].text)
            if not 2 <= n <= 3:
                findings.append(
                    finding(
                        "spec.tldr-sentences",
                        f"the TL;DR has {n} sentences; it should have 2 or 3",
                        section=by_id[s.id],
                    )
                )
    if template.header == "spec":
        findings += _adr_findings(markdown, tdd)
    return findings


def _adr_findings(markdown: str, tdd: Tdd | None) -> list[Finding]:
    """A spec cites the TDD's ADRs: by their ADR-NNN, or, where the TDD links its
    ADRs as files and names no number, by a link to one of them (asking for a
    number there would ask for one made up)."""
    cited = set(re.findall(r"\bADR-\d+\b", markdown))
    named = set(re.findall(r"\bADR-\d+\b", tdd.text)) if tdd is not None else set()
    linked = [link for link in tdd.links if link.kind == "adr"] if tdd is not None else []
    by_link = not named and any(_links_to(markdown, link.target) for link in linked)
    findings: list[Finding] = []
    if tdd is not None and (named or linked):
        if not cited and not by_link:
            which = ", ".join(sorted(named)) or "an ADR document"
            findings.append(
                finding("spec.adr-references", f"the TDD cites {which}; the spec cites none")
            )
    elif not cited:
        findings.append(
            finding(
                "spec.adr-references", "the spec cites no ADR (See ADR-NNN)", severity="warning"
            )
        )
    for adr in sorted(cited - named) if named or linked else []:
        findings.append(
            finding(
                "spec.adr-unknown",
                f"{adr} is cited but the TDD never names it",
                severity="warning",
            )
        )
    return findings


def _links_to(markdown: str, target: str) -> bool:
    """Whether `markdown` links a file named as `target`'s (its folder may differ)."""
    name = target.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return bool(name) and f"{name})" in markdown


def lint_not_applicable(
    template: Template, sections: list[DocSection], tdd: Tdd | None
) -> list[Finding]:
    """A section called "Not applicable" where the TDD has what makes it apply (`applies_if`)."""
    if tdd is None:
        return []
    by_id = {s.section_id: s for s in sections if s.section_id}
    findings: list[Finding] = []
    for section in template.sections:
        evidence = applies(section, tdd)
        found = by_id.get(section.id)
        body = found.text.split("\n", 1)[-1] if found else ""
        if evidence and any(opens_not_applicable(line) for line in body.split("\n")):
            shown = ", ".join(evidence[:4]) + (", ..." if len(evidence) > 4 else "")
            findings.append(
                finding(
                    "section.not-applicable",
                    f'says "Not applicable", but the TDD defines {len(evidence)} HTTP '
                    f"routes ({shown}): specify them",
                    section=found,
                )
            )
    return findings


def lint_targets(template: Template, sections: list[DocSection]) -> list[Finding]:
    """A table part with a Target column must have a number in every target cell."""
    findings: list[Finding] = []
    by_id = {s.section_id: s for s in sections if s.section_id}
    for s in template.sections:
        parts = [
            p
            for p in s.parts
            if p.kind == "table" and any(c.lower() == "target" for c in p.columns)
        ]
        if not parts or s.id not in by_id:
            continue
        doc = by_id[s.id]
        tables = [t for t in markdown_tables(doc.text) if any(c.lower() == "target" for c in t[0])]
        if not tables:
            findings.append(
                finding("perf.target-numbers", "no table with a Target column", section=doc)
            )
            continue
        for table in tables:
            col = [c.lower() for c in table[0]].index("target")
            for row in table[1:]:
                cell = row[col] if col < len(row) else ""
                if not re.search(r"\d", cell):
                    findings.append(
                        finding(
                            "perf.target-numbers",
                            f"target {cell or '(empty)'!r} has no number",
                            section=doc,
                        )
                    )
    return findings
