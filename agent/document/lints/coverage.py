"""TDD coverage: which document sections cover each design heading of the TDD.

Imports `agent.core` and the shared reading module only.
"""

from __future__ import annotations

import re
from typing import Any

from agent.core.tdd import Heading, Tdd, tdd_names, word_terms
from agent.core.templates import Template
from agent.document.lints.reading import norm_title, similarity, split_document

# Headings every TDD has that name no part of the design to implement.
_BOILERPLATE = frozenset(
    {
        "overview",
        "introduction",
        "purpose",
        "scope",
        "summary",
        "executive summary",
        "table of contents",
        "contents",
        "references",
        "related documents",
        "related",
        "appendix",
        "revision history",
        "document history",
        "change log",
        "changelog",
        "glossary",
        "open questions",
        "approval",
        "approvals",
        "sign off",
        "document control",
        "metadata",
        "status",
        "next steps",
        "notes",
    }
)
_IDENTIFIER = re.compile(
    r"`([^`]+)`|\b([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+)\b|\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b"
)


def tdd_topics(tdd: Tdd) -> list[Heading]:
    """The TDD headings a document should cover: levels 2-3, boilerplate left out."""
    first_is_title = bool(tdd.headings) and tdd.headings[0].level == 1
    topics: list[Heading] = []
    for i, h in enumerate(tdd.headings):
        if i == 0 and first_is_title:
            continue
        if h.level > 3:
            continue
        name = norm_title(h.title)
        if not name or name in _BOILERPLATE or name.startswith("appendix"):
            continue
        topics.append(h)
    return topics


def _covers(heading: str, text: str, terms: set[str]) -> bool:
    """Whether a section's text names a TDD heading.

    A heading with identifiers (`DatasetService`, `dataset/{id}`, snake_case)
    is covered when one of them appears; otherwise when the section has all
    the heading's words (three in four for headings of four words or more).
    """
    idents = [next(g for g in m.groups() if g) for m in _IDENTIFIER.finditer(heading)]
    idents = [i.strip() for i in idents if len(i.strip()) > 2]
    if idents:
        return any(i.lower() in text.lower() for i in idents)
    wanted = set(word_terms(norm_title(heading)))
    if not wanted:
        return False
    have = len(wanted & terms)
    return have == len(wanted) if len(wanted) < 4 else have >= 0.75 * len(wanted)


def coverage_matrix(
    tdd: Tdd,
    markdown: str,
    template: Template,
    sections: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, list[str]], list[str]]:
    """TDD heading -> the document sections covering it, and the headings none covers.

    A section covers a heading when its model's `tdd_refs` name the heading or
    its text names it (see `_covers`). Sections are template ids when matched,
    else their headings as written.
    """
    doc = split_document(markdown, template)
    refs: dict[str, set[str]] = {}
    for section_id, content in (sections or {}).items():
        refs[section_id] = {norm_title(str(r)) for r in content.get("tdd_refs", []) or []}
    terms = {id(s): set(word_terms(s.text)) for s in doc}
    topics = tdd_topics(tdd)
    found: list[list[str]] = []
    for h in topics:
        name = norm_title(h.title)
        covering: list[str] = []
        for s in doc:
            by_ref = s.section_id is not None and any(
                r == name or similarity(r, name) >= 0.9 for r in refs.get(s.section_id, set())
            )
            if by_ref or _covers(h.title, s.text, terms[id(s)]):
                covering.append(s.section_id or s.title)
        found.append(covering)
    # An umbrella heading ("1. System Architecture") is covered through its
    # subsections: its own words rarely appear together in one section.
    matrix: dict[str, list[str]] = {}
    for i, h in enumerate(topics):
        covering = list(found[i])
        for j in range(i + 1, len(topics)):
            if topics[j].level <= h.level:
                break
            covering += [c for c in found[j] if c not in covering]
        order = {s.section_id or s.title: n for n, s in enumerate(doc)}
        matrix[h.title] = sorted(covering, key=lambda c: order.get(c, 0))
    orphans = [title for title, covering in matrix.items() if not covering]
    return matrix, orphans


# Under this share of the TDD's names, a document reads as about some other design.
NAMES_FLOOR = 0.8


def unnamed(tdd: Tdd, markdown: str) -> tuple[list[str], int]:
    """The TDD's names (`tdd_names`) the document never mentions, and how many it has."""
    names = tdd_names(tdd.text)
    return [n for n in names if n not in markdown], len(names)
