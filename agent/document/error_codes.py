"""A Code column's cells that name no error, checked against the TDD's lines.

The Spec's error table asks for "the HTTP status, exception class or exit
status as the TDD names it". Qwen2.5-Coder-1.5B, recording of 2026-12-03, put
`RedisError` and `OperationalError` there, as the TDD names them, and also
"KiB", "PostgreSQL" and `relay/delivery/worker.py`: words from the TDD's error
rows that are no error at all. A cell that is no error code is looked up in
the TDD lines that hold it: when those lines name one error code between them
(the row "Payload too large | > 256 KiB | 413, nothing stored" names 413),
that code is written; when they name several or none, the cell is left blank
("—") rather than show a word as a code. A TDD that names no error code at all
is not read this way: there, any label the model gives is the best there is.
Pure code.
"""

from __future__ import annotations

import re
from typing import Any

from agent.core.templates import Section, table_rows

# What names an error: an HTTP status (not a quantity: "500 deliveries/s",
# "450 ms"), an exception class, a constant-style code ("ENDPOINT_GONE"), a
# numbered code ("E1004").
_UNIT = r"(?!\s*(?:ms|s|sec|seconds|min|h|[KMG]i?B|bytes|%|/s|tokens|deliveries|requests|rps)\b)"
_CODE = re.compile(
    rf"\b(?:[45]\d\d\b{_UNIT}|[A-Z]\w*(?:Error|Exception)\b|[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|E\d{{2,5}}\b)"
)
_EXIT = re.compile(r"^(?:exit(?: status| code)? )?\d{1,3}$", re.IGNORECASE)
# A reason code as TDDs write one in backticks: `endpoint_gone`, `max_attempts`.
_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
_CODE_KEY = "code"
BLANK = "\u2014"


def code_lines(text: str) -> list[str]:
    """The TDD's lines that name an error code, each once."""
    return list(dict.fromkeys(line.strip() for line in text.split("\n") if _CODE.search(line)))


def names_an_error(cell: str) -> bool:
    """Whether a Code cell names an error code as a TDD writes one ("413 Payload Too Large")."""
    text = cell.strip().strip("`").strip()
    if text in ("", BLANK):
        return True
    return bool(_CODE.search(text) or _EXIT.match(text) or _SNAKE.fullmatch(text))


def _looked_up(cell: str, lines: list[str]) -> str:
    """The one code the TDD's lines holding `cell` name, or the blank."""
    text = cell.strip().strip("`").strip()
    holding = [line for line in lines if re.search(rf"(?<!\w){re.escape(text)}(?!\w)", line)]
    codes = {m.group() for line in holding for m in _CODE.finditer(line)}
    return codes.pop() if len(codes) == 1 else BLANK


def check_error_codes(
    section: Section, content: dict[str, Any], lines: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """Each Code cell of the section's tables that names no error, looked up: content, notes."""
    notes: list[str] = []
    if not lines:
        return content, notes
    for part, rows in table_rows(section, content, _CODE_KEY):
        changed: list[str] = []
        for row in rows:
            if names_an_error(cell := str(row.get(_CODE_KEY, ""))):
                continue
            row[_CODE_KEY] = _looked_up(cell, lines)
            changed.append(f"{cell} -> {row[_CODE_KEY]}")
        if changed:
            notes.append(
                f"{part.id}: codes that name no error, looked up in the TDD: " + ", ".join(changed)
            )
    return content, notes
