"""HTTP routes a draft names with another method than the TDD gives its path.

Qwen2.5-Coder-1.5B, Spec recording of 2026-12-03: "POST
/api/v1/deliveries/{id}: Delivery with attempt history", where the TDD's
table has `GET /api/v1/deliveries/{id}` for that path and description (and a
POST for `.../redeliver` beside it). A reader would call the wrong method.
Where the TDD gives a path one method and a draft names that path with
another, the draft's method becomes the TDD's; a path the TDD gives several
methods, or none, is left as written. Strings of every part but code (a
decorator is code, and the code repair's). Pure code.
"""

from __future__ import annotations

import re
from typing import Any

from agent.core.tdd import ROUTE_METHODS
from agent.core.templates import Section

# A route in prose, a list item or a diagram label: "POST /api/v1/events",
# "`GET` `/api/v1/endpoints`"; the methods `tdd_routes` reads.
_ROUTE = re.compile(rf"\b({'|'.join(ROUTE_METHODS)})\b([\s`]+)(/[\w{{}}/.:-]*[\w}}])")
_PATH = re.compile(r"`?(/[\w{}/.:-]*[\w}])`?")


def one_method(routes: list[str]) -> dict[str, str]:
    """Each path the TDD's `routes` give exactly one method, and that method.

    `tdd_routes` keeps what ends a sentence after a path ("… call POST
    /api/v1/events."); a draft's route is read without it.
    """
    methods: dict[str, set[str]] = {}
    for route in routes:
        method, _, path = route.partition(" ")
        methods.setdefault(path.rstrip(".:-"), set()).add(method)
    return {path: next(iter(found)) for path, found in methods.items() if len(found) == 1}


def _in_text(text: str, known: dict[str, str], fixed: list[str]) -> str:
    def put(m: re.Match[str]) -> str:
        method = known.get(m.group(3), m.group(1))
        if method != m.group(1):
            fixed.append(f"{m.group(1)} {m.group(3)} -> {method}")
        return f"{method}{m.group(2)}{m.group(3)}"

    return _ROUTE.sub(put, text)


def _in_row(row: dict[str, Any], known: dict[str, str], fixed: list[str]) -> None:
    """A table row with the method in one cell and the path in another."""
    paths = [m.group(1) for v in row.values() if (m := _PATH.fullmatch(str(v).strip()))]
    if len(paths) != 1 or paths[0] not in known:
        return
    for key, value in row.items():
        cell = str(value).strip().strip("`")
        if cell in ROUTE_METHODS and cell != known[paths[0]]:
            fixed.append(f"{cell} {paths[0]} -> {known[paths[0]]}")
            row[key] = str(value).replace(cell, known[paths[0]])


def _walk(value: Any, known: dict[str, str], fixed: list[str]) -> Any:
    if isinstance(value, str):
        return _in_text(value, known, fixed)
    if isinstance(value, list):
        return [_walk(v, known, fixed) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, dict):
        row: dict[str, Any] = {k: _walk(v, known, fixed) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
        _in_row(row, known, fixed)
        return row
    return value


def check_routes(
    section: Section, content: dict[str, Any], routes: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """Every route of the section's non-code parts with the TDD's method for its path."""
    known = one_method(routes)
    if not known:
        return content, []
    fixed: list[str] = []
    for part in section.parts:
        if part.kind != "code" and part.id in content:
            content[part.id] = _walk(content[part.id], known, fixed)
    if not fixed:
        return content, []
    return content, [f"{section.id}: methods written as the TDD gives them: {', '.join(fixed)}"]
