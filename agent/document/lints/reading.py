"""Reading a document for the lints: its sections matched to the template, its code blocks.

Also the `Finding` every lint returns and the small text measures (words,
sentences, tables) several lint families share. Markdown structure comes from
`agent.core.markdown`; this module imports no other lint module.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from agent.core import markdown as md
from agent.core.errors import InputError
from agent.core.files import read_text
from agent.core.tdd import MAX_BYTES as MAX_DOCUMENT_BYTES
from agent.core.tdd import parse_headings
from agent.core.templates import Template

Severity = Literal["error", "warning"]


class Finding(BaseModel):
    """One deterministic lint result."""

    id: str = Field(description="stable lint id, e.g. code.python-syntax, placeholder")
    section: str | None = Field(description="template section id, None for the whole document")
    message: str
    severity: Severity = "error"
    where: str = Field(default="", description="the document heading it sits under, as written")
    line: int | None = Field(default=None, description="1-based line in the document")


class DocSection(BaseModel):
    """A top-level section of a markdown document, matched to the template if it can be."""

    title: str
    start: int
    end: int
    text: str = Field(description="heading line included")
    section_id: str | None = None


class CodeBlock(BaseModel):
    """A fenced code block of the document, with the section and heading it sits under."""

    language: str
    code: str
    line: int
    section: str | None
    where: str
    heading: str = Field(description="the nearest heading above the block")
    path: str = Field(default="", description="a `File:` path given just above the block")


def read_document(path: Path) -> str:
    """A markdown document's text (at most 2 MB, like a TDD), or an InputError saying what to do."""
    text = read_text(
        path, MAX_DOCUMENT_BYTES, "markdown document", "review smaller documents", remember=True
    )
    if not text.strip():
        raise InputError(f"{path} is empty; nothing to review")
    return text


_NUMBERING = re.compile(r"^\s*(?:section\s+)?(?:\d+(?:\.\d+)*|[ivx]+)[.):]?\s+", re.I)
_PAREN_NOTE = re.compile(r"\s*\((?:added|updated|new|planned|excerpt|optional)[^)]*\)\s*$", re.I)


def norm_title(title: str) -> str:
    """A heading title without numbering, notes, markup or case: for matching."""
    title = _PAREN_NOTE.sub("", _NUMBERING.sub("", title.strip()))
    return " ".join(re.sub(r"[^\w;]+", " ", title.lower()).split())


# Titles this close (difflib ratio) are the same section: "Key Algorithm" and
# "Key Algorithms" match, "Implementation Order" and "Implementation Strategy" do not.
_MATCH = 0.85


def similarity(a: str, b: str) -> float:
    """How alike two normalised titles are (difflib ratio, 0 to 1)."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def split_document(markdown: str, template: Template) -> list[DocSection]:
    """The document's top-level sections (below the title), matched to template sections."""
    headings = parse_headings(markdown)
    body = headings[1:] if headings and headings[0].level == 1 else headings
    if not body:
        return []
    top = min(h.level for h in body)
    tops = [h for h in body if h.level == top]
    sections: list[DocSection] = []
    for i, h in enumerate(tops):
        end = tops[i + 1].start if i + 1 < len(tops) else len(markdown)
        sections.append(
            DocSection(title=h.title, start=h.start, end=end, text=markdown[h.start : end])
        )
    # Greedy one-to-one matching, best pairs first, so two similar template
    # titles cannot both claim one heading.
    pairs = sorted(
        (
            (similarity(norm_title(d.title), norm_title(s.title)), di, si)
            for di, d in enumerate(sections)
            for si, s in enumerate(template.sections)
        ),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_doc: set[int] = set()
    used_tpl: set[int] = set()
    for score, di, si in pairs:
        if score < _MATCH:
            break
        if di in used_doc or si in used_tpl:
            continue
        used_doc.add(di)
        used_tpl.add(si)
        sections[di].section_id = template.sections[si].id
    return sections


def section_at(sections: list[DocSection], offset: int) -> DocSection | None:
    """The section a character offset falls in, if any."""
    for s in sections:
        if s.start <= offset < s.end:
            return s
    return None


_FILE_LINE = re.compile(r"(?:File|Path):\s*`([^`]+)`", re.I)


def code_blocks(markdown: str, sections: list[DocSection]) -> tuple[list[CodeBlock], list[Finding]]:
    """Fenced code blocks (in list items too), and a finding for each unclosed fence."""
    document = md.parse(markdown)
    blocks: list[CodeBlock] = []
    findings: list[Finding] = []
    for fence in document.fences:
        owner = section_at(sections, document.offsets[fence.line])
        heading = _heading_above(document, fence.line)
        block = CodeBlock(
            language=fence.language,
            code=fence.code.rstrip("\n"),
            line=fence.line + 1,
            section=owner.section_id if owner else None,
            where=owner.title if owner else "",
            heading=heading,
            path=_block_path(document.lines, fence.line, heading),
        )
        if not fence.closed:
            findings.append(
                Finding(
                    id="code.unclosed-fence",
                    section=block.section,
                    where=block.where,
                    line=block.line,
                    message=f"the code fence opened at line {block.line} is never closed",
                )
            )
        blocks.append(block)
    return blocks, findings


def _heading_above(document: md.Markdown, line: int) -> str:
    """The title of the nearest heading above a line, or ""."""
    above = [h.title for h in document.headings if h.line < line]
    return above[-1] if above else ""


def _block_path(lines: tuple[str, ...], line: int, heading: str) -> str:
    """A `File:` path in the three lines above a block, else a file named in its heading."""
    path_match = _FILE_LINE.search("".join(lines[max(0, line - 3) : line]))
    if path_match:
        return path_match.group(1)
    # Hand-written TIDs put the path in the heading: #### `backend/x.py`
    prev_text = "".join(lines[max(0, line - 2) : line])
    tick = re.search(r"`([^`]+\.\w+)`", heading) if heading in prev_text else None
    return tick.group(1) if tick else ""


def finding(
    lint: str,
    message: str,
    *,
    section: DocSection | None = None,
    section_id: str | None = None,
    severity: Severity = "error",
    line: int | None = None,
    where: str = "",
) -> Finding:
    """A Finding placed in `section` (or at `section_id` and `where` when there is none)."""
    return Finding(
        id=lint,
        section=section.section_id if section else section_id,
        where=section.title if section else where,
        message=message,
        severity=severity,
        line=line,
    )


def line_of(markdown: str, offset: int) -> int:
    """The 1-based line of a character offset."""
    return markdown.count("\n", 0, offset) + 1


def code_lines(markdown: str) -> list[bool]:
    """For each line, whether it is inside a fenced block (fence lines excluded)."""
    return md.parse(markdown).code_mask(delimiters=False)


def prose_lines(text: str) -> list[str]:
    """The lines of a text that are not heading lines."""
    document = md.parse(text)
    heading = {i for h in document.headings for i in range(h.line, h.body)}
    return [line for i, line in enumerate(text.splitlines()) if i not in heading]


def count_words(markdown: str) -> int:
    """Words as a reader counts them: tokens with a letter or digit, code included."""
    return sum(1 for token in markdown.split() if re.search(r"\w", token))


_SENTENCE_END = re.compile(r"[.!?](?:\s+|$)")


def count_sentences(text: str) -> int:
    """Sentences in a text's prose (headings left out)."""
    prose = " ".join(line for line in prose_lines(text) if line.strip())
    # "e.g. " and "i.e. " end no sentence.
    prose = re.sub(r"\b(?:e\.g|i\.e|etc|vs)\.", "x", prose)
    parts = [p for p in _SENTENCE_END.split(prose) if re.search(r"\w", p)]
    return len(parts)


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in the text as rows of cells (header first, rule row dropped)."""
    return [[list(table.header), *map(list, table.rows)] for table in md.parse(text).tables]
