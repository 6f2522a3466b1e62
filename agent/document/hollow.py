"""Code parts that show no code of their own: comments only, imports only, or a repeat.

Each parses (or would, uncut), so the code repair never sees them, yet none
shows what its part asks for. Qwen2.5-Coder-1.5B, in the README run of
2026-12-03: Complete Implementation Example as fourteen import lines and a
loop, Data Processing Pipeline as the Core Business Logic function again, and
Application Configuration as the first eight lines of the Environment
Variables class above it. `agent.draft.code_repair` asks once for each (prompt
`write_code`, naming what was found). Pure code; imports `agent.core` and the
document modules only.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, Literal

from agent.core.templates import Part, Section
from agent.document.assemble import unfence
from agent.document.mend import MARKDOWN, only_comments

_IMPORT = re.compile(r"^(?:from\s+[\w.]+\s+)?import\b")
# Lines that count when one block is compared with another: `return None`,
# `try:` and `self.session = session` are in any two blocks of one feature.
_TELLING_CHARS = 24
# A block repeats an earlier one when at least this share of its telling lines
# are lines of the earlier one, and it has at least this many.
_REPEAT_SHARE = 0.6
_REPEAT_LINES = 3

Found = Literal["comments", "imports", "repeat"]


@dataclass(frozen=True)
class Hollow:
    """A code part with no code of its own: what was found, and the earlier part it repeats."""

    part: Part
    found: Found
    earlier: Part | None = None


def only_imports(language: str, code: str) -> bool:
    """Python whose lines are all imports, comments or blank, with one import at least.

    A line cut inside an import's brackets still counts as the import.
    """
    if language.lower() not in ("python", "py"):
        return False
    imports = 0
    open_brackets = 0
    for raw in unfence(code).split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if open_brackets:
            open_brackets += line.count("(") - line.count(")")
            open_brackets = max(open_brackets, 0)
            continue
        if not _IMPORT.match(line):
            return False
        imports += 1
        open_brackets = max(line.count("(") - line.count(")"), 0)
    return imports > 0


def import_statements(code: str) -> list[str]:
    """The whole import statements of python `code`, each once, in order.

    One a bound cut (`from fastapi import`, or inside its brackets) is no
    statement and is not kept.
    """
    statements: list[str] = []
    current: list[str] = []
    depth = 0
    for raw in unfence(code).split("\n"):
        line = raw.strip()
        if not current and not _IMPORT.match(line):
            continue
        current.append(line if not current else raw.rstrip())
        depth = max(depth + line.count("(") - line.count(")"), 0)
        if depth == 0:
            statements.append("\n".join(current))
            current = []
    return list(dict.fromkeys(s for s in statements if _parses(s)))


def _parses(statement: str) -> bool:
    try:
        ast.parse(statement)
    except SyntaxError:
        return False
    return True


def under_imports(statements: list[str], code: str) -> str:
    """`code` under the import statements its block held alone, none written twice.

    The write call for a block of imports alone asks for the code after them
    and does not show them (shown, they came back alone again: 4 of 6 calls,
    Qwen2.5-Coder-1.5B, 2026-12-03); they are put back here.
    """
    if not statements:
        return code
    have = set(statements)
    lines = [line for line in code.split("\n") if line.strip() not in have]
    return "\n".join([*statements, "", *lines]).strip("\n")


def _telling(code: str) -> list[str]:
    """Lines of code (not comments or imports) long enough to tell two blocks apart."""
    lines = (" ".join(raw.split()) for raw in unfence(code).split("\n"))
    return [
        line
        for line in lines
        if len(line) >= _TELLING_CHARS and not line.startswith("#") and not _IMPORT.match(line)
    ]


def repeats(code: str, earlier: str) -> bool:
    """Whether most of `code`'s telling lines are lines of `earlier`."""
    mine = _telling(code)
    if len(mine) < _REPEAT_LINES:
        return False
    theirs = set(_telling(earlier))
    return sum(line in theirs for line in mine) >= _REPEAT_SHARE * len(mine)


def hollow_parts(section: Section, content: dict[str, Any]) -> list[Hollow]:
    """The section's code parts with no code of their own, in order.

    A repeat is of an earlier code part of the same section (the model wrote
    both in one reply); blocks of other sections are drafted apart.
    """
    found: list[Hollow] = []
    before: list[tuple[Part, str]] = []
    for part in section.parts:
        value = content.get(part.id)
        if part.kind != "code" or not isinstance(value, dict) or value.get("dropped"):
            continue
        if part.language.lower() in MARKDOWN:  # a document, not a program
            continue
        code = str(value.get("code", ""))
        what = what_is_hollow(part.language, code, before)
        if what is not None:
            found.append(Hollow(part=part, found=what[0], earlier=what[1]))
        else:
            before.append((part, code))
    return found


def what_is_hollow(
    language: str, code: str, before: list[tuple[Part, str]]
) -> tuple[Found, Part | None] | None:
    """Why `code` shows no code of its own (and the earlier part it repeats), or None."""
    if only_comments(code):
        return "comments", None
    if only_imports(language, code):
        return "imports", None
    for part, earlier in before:
        if repeats(code, earlier):
            return "repeat", part
    return None
