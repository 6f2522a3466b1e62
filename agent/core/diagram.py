"""Diagrams as data: components and labelled edges, drawn by code as Mermaid and ASCII.

The model never writes diagram syntax. A template part of kind `diagram` asks
for a `Diagram` (components with responsibilities, edges with labels); this
module renders it as a Mermaid `flowchart` (valid by construction: generated
node ids, every label quoted with its special characters as entity codes)
beside an ASCII drawing. `mermaid_errors` checks any Mermaid block in a
document for the constructs such flowcharts use, for review.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME_CHARS = 30
LABEL_CHARS = 30
RESPONSIBILITY_CHARS = 120


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(description="the component's name as the TDD spells it")] = ""
    responsibility: Annotated[str, Field(description="what it does, in a short phrase")] = ""


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Annotated[str, Field(description="name of the component the arrow starts at")] = ""
    target: Annotated[str, Field(description="name of the component the arrow points to")] = ""
    label: Annotated[str, Field(description="what flows along it: a call, data, an event")] = ""


class Diagram(BaseModel):
    """What a `diagram` part's model returns (schema bounds come from the template part)."""

    components: list[Component]
    edges: list[Edge]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _key(name: str) -> str:
    return _one_line(name).casefold()


def _resolved(diagram: Diagram) -> tuple[list[Component], list[tuple[int, int, str]]]:
    """Components without duplicates, and edges as index pairs.

    An edge naming a component not in the list adds it: the arrow is kept,
    and the name is drawn as the model wrote it.
    """
    components: list[Component] = []
    index: dict[str, int] = {}

    def add(name: str, responsibility: str = "") -> int | None:
        key = _key(name)
        if not key:
            return None
        if key not in index:
            index[key] = len(components)
            components.append(
                Component(name=_one_line(name), responsibility=_one_line(responsibility))
            )
        return index[key]

    for c in diagram.components:
        add(c.name, c.responsibility)
    edges: list[tuple[int, int, str]] = []
    for e in diagram.edges:
        a, b = add(e.source), add(e.target)
        if a is not None and b is not None:
            edges.append((a, b, _one_line(e.label)))
    return components, edges


# Characters that end or change a quoted Mermaid label, as Mermaid's entity codes.
_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "|": "#124;",
    "`": "#96;",
    "[": "#91;",
    "]": "#93;",
    "{": "#123;",
    "}": "#125;",
    "(": "#40;",
    ")": "#41;",
}


def mermaid_label(text: str) -> str:
    """A label as a quoted Mermaid string: one line, no character that ends it early."""
    text = "".join(ch for ch in _one_line(text) if unicodedata.category(ch)[0] != "C")
    return '"' + "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in text) + '"'


def render_mermaid(diagram: Diagram, direction: str = "LR") -> str:
    """The diagram as a Mermaid flowchart (the text inside the fence)."""
    components, edges = _resolved(diagram)
    lines = [f"flowchart {direction}"]
    for i, c in enumerate(components, 1):
        lines.append(f"    n{i}[{mermaid_label(c.name)}]")
    for a, b, label in edges:
        arrow = f" -->|{mermaid_label(label)}| " if label else " --> "
        lines.append(f"    n{a + 1}{arrow}n{b + 1}")
    return "\n".join(lines)


def _box(name: str, width: int, down: bool) -> list[str]:
    inner = width - 2
    bottom = "─" * inner
    if down:
        mid = inner // 2
        bottom = bottom[:mid] + "┬" + bottom[mid + 1 :]
    return ["┌" + "─" * inner + "┐", "│ " + name.ljust(inner - 2) + " │", "└" + bottom + "┘"]


def render_ascii(diagram: Diagram) -> str:
    """The diagram as boxes and arrows: each component in order, with its responsibility.

    An edge from one component to the next is drawn as a down arrow between
    their boxes; every other edge is listed under the boxes as `A ──label──► B`.
    """
    components, edges = _resolved(diagram)
    if not components:
        return ""
    width = max(len(c.name) for c in components) + 4
    chained: dict[int, str] = {}
    others: list[tuple[int, int, str]] = []
    for a, b, label in edges:
        if b == a + 1 and a not in chained:
            chained[a] = label
        else:
            others.append((a, b, label))
    lines: list[str] = []
    for i, c in enumerate(components):
        box = _box(c.name, width, i in chained)
        if c.responsibility:
            box[1] += f"  {c.responsibility}"
        lines.extend(box)
        if i in chained:
            pad = " " * ((width - 2) // 2 + 1)
            label = chained[i]
            lines.append(f"{pad}│ {label}" if label else f"{pad}│")
            lines.append(f"{pad}▼")
    if others:
        lines.append("")
        for a, b, label in others:
            arrow = f"──{label}──►" if label else "──►"
            lines.append(f"{components[a].name} {arrow} {components[b].name}")
    return "\n".join(line.rstrip() for line in lines)


def render_markdown(diagram: Diagram) -> str:
    """The Mermaid block, then the same diagram in ASCII for readers without Mermaid."""
    mermaid = render_mermaid(diagram)
    ascii_art = render_ascii(diagram)
    blocks = [f"```mermaid\n{mermaid}\n```"]
    if ascii_art:
        blocks.append(f"```text\n{ascii_art}\n```")
    return "\n\n".join(blocks)


# --- checking Mermaid blocks ---------------------------------------------------------------

_HEADER = re.compile(r"^(?:flowchart|graph)(?:\s+(?:TD|TB|BT|RL|LR))?\s*;?$")
_ID = re.compile(r"[A-Za-z0-9_][\w-]*")
# Shapes by opening bracket, longest first; each with the text that closes it.
_SHAPES = [
    ("(((", ")))"),
    ("([", "])"),
    ("[[", "]]"),
    ("[(", ")]"),
    ("((", "))"),
    ("{{", "}}"),
    ("[/", "/]"),
    ("[\\", "\\]"),
    ("[", "]"),
    ("(", ")"),
    ("{", "}"),
    (">", "]"),
]
_LINK = re.compile(
    r"(?:<|o|x)?(?:-{2,}|={2,}|-\.+-|~{3,})(?:>|o|x)?"  # -->, ---, ==>, -.->, <-->, --o
)
_TEXT_LINK = re.compile(r"(?:--|==|-\.)\s*([^\-=>|\"\n][^|\n]*?)\s*(?:-->|==>|\.->|---|===)")
_KEYWORDS = re.compile(
    r"^(?:subgraph\b.*|end|direction\s+(?:TD|TB|BT|RL|LR)|classDef\s.+|class\s.+"
    r"|style\s.+|linkStyle\s.+|click\s.+)$"
)
# Ids the flowchart grammar reserves: a node named so breaks the diagram.
_RESERVED = {"end", "subgraph", "graph", "flowchart", "style", "class", "classdef", "click"}


class _Bad(Exception):
    pass


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def done(self) -> bool:
        self.space()
        return self.pos >= len(self.text)

    def node(self) -> None:
        self.space()
        match = _ID.match(self.text, self.pos)
        if not match:
            raise _Bad(f"expected a node id at {self.text[self.pos :][:20]!r}")
        if match.group(0).lower() in _RESERVED:
            raise _Bad(f"{match.group(0)!r} is a reserved word, not a usable node id")
        self.pos = match.end()
        for opener, closer in _SHAPES:
            if self.text.startswith(opener, self.pos):
                self.pos += len(opener)
                self.label(closer)
                return

    def label(self, closer: str) -> None:
        """A node's text up to `closer`: quoted, or plain without brackets or quotes."""
        self.space()
        if self.text.startswith('"', self.pos):
            end = self.text.find('"', self.pos + 1)
            if end < 0:
                raise _Bad("a label's opening quote is never closed")
            self.pos = end + 1
            self.space()
            if not self.text.startswith(closer, self.pos):
                raise _Bad(f"expected {closer!r} after the quoted label")
            self.pos += len(closer)
            return
        end = self.text.find(closer, self.pos)
        if end < 0:
            raise _Bad(f"a node shape is never closed with {closer!r}")
        body = self.text[self.pos : end]
        if re.search(r"[\[\](){}\"]", body):
            raise _Bad(f"unquoted label {body!r} has brackets or quotes; quote it")
        self.pos = end + len(closer)

    def nodes(self) -> None:
        self.node()
        while True:
            self.space()
            if not self.text.startswith("&", self.pos):
                return
            self.pos += 1
            self.node()

    def link(self) -> bool:
        self.space()
        text_link = _TEXT_LINK.match(self.text, self.pos)
        if text_link:
            self.pos = text_link.end()
            return True
        match = _LINK.match(self.text, self.pos)
        if not match:
            return False
        self.pos = match.end()
        self.space()
        if self.text.startswith("|", self.pos):
            rest = self.text[self.pos + 1 :]
            if rest.startswith('"'):
                end_quote = rest.find('"', 1)
                if end_quote < 0 or not rest[end_quote + 1 :].lstrip().startswith("|"):
                    raise _Bad("an edge label's quote or closing | is missing")
                self.pos += 1 + end_quote + 1
                self.space()
                self.pos += 1
            else:
                end = rest.find("|")
                if end < 0:
                    raise _Bad("an edge label is opened with | and never closed")
                self.pos += end + 2
        return True


def _statement_error(statement: str) -> str | None:
    if not statement or statement.startswith("%%") or _KEYWORDS.match(statement):
        return None
    scan = _Scanner(statement)
    try:
        scan.nodes()
        while not scan.done():
            if not scan.link():
                raise _Bad(f"expected an arrow at {statement[scan.pos :][:20]!r}")
            scan.nodes()
    except _Bad as e:
        return str(e)
    return None


def _statements(line: str) -> list[str]:
    """A line split at `;` outside quoted text."""
    parts: list[str] = []
    current = []
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts]


_OTHER_TYPES = {
    "sequenceDiagram", "classDiagram", "classDiagram-v2", "stateDiagram", "stateDiagram-v2",
    "erDiagram", "journey", "gantt", "pie", "quadrantChart", "requirementDiagram", "gitGraph",
    "mindmap", "timeline", "zenuml", "sankey-beta", "xychart-beta", "block-beta", "packet-beta",
    "architecture-beta", "kanban", "radar-beta", "treemap-beta", "info",
}  # fmt: skip


def _first_line(lines: list[str]) -> int | None:
    """The header line: after front matter (--- ... ---) and %% comments or directives."""
    i = 0
    if lines and lines[0].strip() == "---":
        close = next((j for j in range(1, len(lines)) if lines[j].strip() == "---"), None)
        i = (close + 1) if close is not None else len(lines)
    for j in range(i, len(lines)):
        stripped = lines[j].strip()
        if stripped and not stripped.startswith("%%"):
            return j
    return None


def mermaid_errors(code: str) -> list[tuple[int, str]]:
    """Problems in a Mermaid flowchart, as (line within the block, message); [] when fine.

    Checks what tidsmith's flowcharts and common hand-written ones use: the
    `flowchart`/`graph` header, node ids and shapes, quoted and plain labels,
    arrows with and without labels, subgraphs, comments and styling lines.
    Other diagram types (sequenceDiagram, classDiagram, ...) are not checked.
    """
    lines = code.splitlines()
    first = _first_line(lines)
    if first is None:
        return [(1, "the mermaid block is empty")]
    header = lines[first].strip()
    kind = header.split()[0]
    if kind not in {"flowchart", "graph"}:
        if kind in _OTHER_TYPES or kind.startswith("C4"):
            return []  # another diagram type: not ours to judge
        return [(first + 1, f"a mermaid block must start with a diagram type, not {header!r}")]
    if not _HEADER.match(header):
        return [(first + 1, f"bad flowchart header {header!r}: use e.g. 'flowchart LR'")]
    errors: list[tuple[int, str]] = []
    depth = 0
    for i in range(first + 1, len(lines)):
        for statement in _statements(lines[i]):
            if statement.startswith("subgraph"):
                depth += 1
            elif statement == "end":
                depth -= 1
                if depth < 0:
                    errors.append((i + 1, "'end' without a subgraph"))
                    depth = 0
            problem = _statement_error(statement)
            if problem:
                errors.append((i + 1, problem))
    if depth > 0:
        errors.append((len(lines), f"{depth} subgraph(s) never closed with 'end'"))
    return errors
