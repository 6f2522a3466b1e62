"""Versions in a table's Version column checked against the versions the sources give.

The Spec asks for exact versions (the seed's rule) and a model gives one
whether or not the TDD does. Qwen2.5-Coder-1.5B, recording of 2026-12-03, for
the example TDD, which gives no version for any of them: FastAPI "==0.10.1"
(a 2019 release), Python "==3.11.3", GitHub Actions "==2.5.0"; and
"==16.0.0" for the TDD's "PostgreSQL 16". A reader would pin what the table
says. So a version the sources (the TDD, and research notes when there are
any) give right after the row's name is written as they write it; any other
is kept, marked as not in the TDD, for the reader to check. Pure code.
"""

from __future__ import annotations

import re
from typing import Any

from agent.core.templates import Section, column_keys, table_rows

# A product's name: "PostgreSQL", "Node.js", "C++", "scikit-learn".
_NAME = r"[A-Za-z][A-Za-z0-9+#.-]*[A-Za-z0-9+#]"
# A name, then a version after a space or a specifier: "PostgreSQL 16",
# "Python 3.12", "fastapi==0.115.2", "node:20", "redis@7.2".
_GIVEN = re.compile(
    rf"(?<![\w.-])({_NAME})"
    r"(?:\s+|\s*(?:===?|>=|~=|\^|@|:)\s*)v?(\d+(?:\.\d+){0,3})(?!\w|\.\d)"
)
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_WORD = re.compile(_NAME)
NOT_GIVEN = "(not in the TDD)"
# Only a Version column is read; its key as `column_keys` spells it.
_VERSION_KEY = "version"


def given_versions(text: str) -> dict[str, list[str]]:
    """Each name in `text` (lower case) and the versions written right after it, in order."""
    found: dict[str, list[str]] = {}
    for name, version in _GIVEN.findall(text):
        seen = found.setdefault(name.lower(), [])
        if version not in seen:
            seen.append(version)
    return found


def _normal(version: str) -> str:
    """A version without its trailing zero parts: 16.0.0 and 16 are one version."""
    parts = version.split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)


def _name(row: dict[str, Any], keys: list[str]) -> str:
    """The row's name: the cell before its Version column (Choice, Package), asides left out."""
    at = keys.index(_VERSION_KEY)
    key = keys[at - 1] if at > 0 else keys[at + 1]
    return re.sub(r"\([^)]*\)", " ", str(row.get(key, "")))


def _checked(cell: str, name: str, given: dict[str, list[str]]) -> str:
    """The cell as the sources write its version, or marked as not in them.

    A different version given after the same name is no correction: the TDD's
    "Redis 7" is the server, a dependency table's `redis` the client library.
    """
    number = _NUMBER.search(cell)
    if number is None or NOT_GIVEN in cell:
        return cell  # no version at all is the dependency lint's to report
    versions = [v for word in _WORD.findall(name) for v in given.get(word.lower(), [])]
    same = [v for v in versions if _normal(v) == _normal(number.group(0))]
    if number.group(0) in same:
        return cell
    if same:
        return max(same, key=len)
    return f"{cell} {NOT_GIVEN}"


def check_versions(
    section: Section, content: dict[str, Any], given: dict[str, list[str]]
) -> tuple[dict[str, Any], list[str]]:
    """Each Version cell of the section's tables checked against `given`: content, notes."""
    notes: list[str] = []
    for part, rows in table_rows(section, content, _VERSION_KEY):
        keys = column_keys(part)
        marked: list[str] = []
        written: list[str] = []
        for row in rows:
            cell = str(row.get(_VERSION_KEY, ""))
            name = _name(row, keys)
            checked = _checked(cell, name, given)
            if checked == cell:
                continue
            row[_VERSION_KEY] = checked
            name = name.strip()
            (marked if checked.endswith(NOT_GIVEN) else written).append(f"{name} {cell}")
        if marked:
            notes.append(f"{part.id}: versions the TDD does not give, marked: {', '.join(marked)}")
        if written:
            notes.append(f"{part.id}: versions written as the TDD gives them: {', '.join(written)}")
    return content, notes
