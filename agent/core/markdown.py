"""The one markdown parser: headings, fenced code, tables and links, on markdown-it-py.

Every module that reads markdown structure (the TDD loader, the lints, coverage,
markup safety, assembly) asks this module instead of scanning lines by hand, so
a fence or a heading means the same thing everywhere. Lines are 0-based and end
lines exclusive, like markdown-it's own maps. Imports nothing from `agent`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token


@dataclass(frozen=True)
class MarkdownHeading:
    """A top-level ATX or setext heading: its section runs from `line` to `end` (the next one)."""

    level: int
    title: str
    line: int
    end: int
    body: int  # the first line after the heading (after a setext underline)


@dataclass(frozen=True)
class Fence:
    """A fenced code block; `line` is the opening fence, `end` one past the last line."""

    info: str
    code: str
    line: int
    end: int
    closed: bool

    @property
    def language(self) -> str:
        """The info string's first word, lower-cased, without `{...}` attributes."""
        match = re.match(r"[^\s`{]*", self.info.strip())
        return match.group(0).lower() if match else ""


@dataclass(frozen=True)
class Table:
    """A pipe table: header cells, body rows of cells, and its line range."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    line: int
    end: int


@dataclass(frozen=True)
class MarkdownLink:
    """An inline link `[text](target)` in prose (not in code), as written."""

    text: str
    target: str
    line: int


@dataclass(frozen=True)
class Markdown:
    """One parsed text: its lines (with ends) and the structure found in them."""

    lines: tuple[str, ...]
    offsets: tuple[int, ...]
    headings: tuple[MarkdownHeading, ...]
    fences: tuple[Fence, ...]
    tables: tuple[Table, ...]
    links: tuple[MarkdownLink, ...]

    def code_mask(self, *, delimiters: bool = True) -> list[bool]:
        """For each line, whether it is in a fenced block (fence lines too with `delimiters`)."""
        mask = [False] * len(self.lines)
        for fence in self.fences:
            last = fence.end - 1 if fence.closed else fence.end
            first = fence.line if delimiters else fence.line + 1
            stop = fence.end if delimiters else last
            for i in range(first, min(stop, len(mask))):
                mask[i] = True
        return mask


# A link as written: no `]` in its text, no space in its target unless in `<...>`.
_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\(\s*(<[^>\n]*>|[^)\s]+)(?:\s+[\"'(][^\n]*?[\"')])?\s*\)")


def parse(text: str) -> Markdown:
    """The structure of a markdown text (parsed once per distinct text; shared, read-only)."""
    return _parse(text)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    """CommonMark with pipe tables, built once."""
    # Lazy: markdown-it costs ~65 ms to import; `tidsmith --help` never parses markdown.
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


@lru_cache(maxsize=64)
def _parse(text: str) -> Markdown:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    source = _source_lines(lines)
    at = _line_starts(source)
    tokens = _parser().parse(text)
    return Markdown(
        lines=tuple(lines),
        offsets=tuple(offsets),
        headings=tuple(_headings(tokens, at)),
        fences=tuple(_fence(t, source, at) for t in tokens if t.type == "fence" and t.map),
        tables=tuple(_tables(tokens, at)),
        links=tuple(_links(tokens, at)),
    )


def _source_lines(lines: list[str]) -> list[str]:
    """The lines as markdown-it counts them: only `\\n`, `\\r\\n` and `\\r` end one.

    `str.splitlines` also breaks at form feeds, `\\x1c`-`\\x1e`, `\\x85` and
    `\\u2028`/`\\u2029`; callers count lines that way, markdown-it does not.
    """
    if all(line.endswith(("\n", "\r")) for line in lines[:-1]):
        return lines
    source: list[str] = []
    current = ""
    for line in lines:
        current += line
        if line.endswith(("\n", "\r")):
            source.append(current)
            current = ""
    return [*source, current] if current else source


def _line_starts(source: list[str]) -> list[int]:
    """For each markdown-it line (and the end), its index among `str.splitlines` lines."""
    starts = [0]
    for line in source:
        starts.append(starts[-1] + max(1, len(line.splitlines())))
    return starts


def _headings(tokens: list[Token], at: list[int]) -> list[MarkdownHeading]:
    """Headings in order; each section ends where the next heading of any level starts."""
    found: list[tuple[int, int, int, str]] = []  # (line, body line, level, title)
    for i, token in enumerate(tokens):
        # Headings inside a list item or a quote are not the document's sections.
        if token.type == "heading_open" and token.map and token.level == 0:
            line, body = token.map
            title = tokens[i + 1].content.strip()
            if token.markup in ("=", "-") and "\n" in title:
                # Only the underlined line is the heading; the lines above stay prose.
                line = body - 2
                title = title.rsplit("\n", 1)[1].strip()
            found.append((at[line], at[body], int(token.tag[1:]), title))
    return [
        MarkdownHeading(
            level=level,
            title=title,
            line=line,
            end=found[n + 1][0] if n + 1 < len(found) else at[-1],
            body=body,
        )
        for n, (line, body, level, title) in enumerate(found)
    ]


def _fence(token: Token, source: list[str], at: list[int]) -> Fence:
    """A fence token as a Fence; closed when its last line is a closing run of its marker."""
    start, end = token.map or (0, 0)
    last = source[end - 1].strip() if end - 1 > start and end - 1 < len(source) else ""
    marker = token.markup
    closed = bool(last) and set(last) == {marker[0]} and len(last) >= len(marker)
    return Fence(info=token.info, code=token.content, line=at[start], end=at[end], closed=closed)


def _tables(tokens: list[Token], at: list[int]) -> list[Table]:
    """Pipe tables as header cells and body rows."""
    tables: list[Table] = []
    rows: list[list[str]] = []
    start: int | None = None
    end = 0
    for token in tokens:
        if token.type == "table_open":
            rows = []
            start, end = (at[token.map[0]], at[token.map[1]]) if token.map else (0, 0)
        elif start is None:
            continue
        elif token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(token.content.strip())
        elif token.type == "table_close":
            cells = [tuple(row) for row in rows]
            tables.append(Table(header=cells[0], rows=tuple(cells[1:]), line=start, end=end))
            start = None
    return tables


def _links(tokens: list[Token], at: list[int]) -> list[MarkdownLink]:
    """Inline links in prose blocks, as written, with their line."""
    links: list[MarkdownLink] = []
    for token in tokens:
        if token.type != "inline" or not token.map:
            continue
        for match in _LINK.finditer(token.content):
            line = token.map[0] + token.content.count("\n", 0, match.start())
            links.append(MarkdownLink(text=match.group(1), target=match.group(2), line=at[line]))
    return links
