"""File trees as data: paths with what each holds, drawn by code with ├── └── │.

The model never draws a tree. A template part of kind `tree` asks for a list
of files (a path and what the file holds); this module draws the tree from it.
Asked to draw one, Qwen2.5-Coder-1.5B wrote every file without the comment the
prompt asked for, nested a file under a file, repeated the whole package under
`tests/`, and then drew the same tree again in the python block after it.
Drawn by code, every line has its comment and the nesting follows the paths.
"""

from __future__ import annotations

import re
from typing import Any

# Bounds of a row's strings (`agent.core.templates` builds the row's schema).
PATH_CHARS = 60
HOLDS_CHARS = 90
# Names wider than this do not push every comment further right.
_ALIGN_MAX = 40
# A tree the TDD's own files complete stops there: past a screen it is not read.
MAX_ROWS = 24


class _Node:
    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.holds = ""
        self.folder = False


# A class name where a path belongs: no folder, no extension, a capital inside
# (`DeliveryService`); `Dockerfile` and `Makefile` have none inside.
_CLASS_NAME = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+$")


def clean_path(path: str) -> str:
    """A path as a tree names it: one token, forward slashes, no leading `./` or `/`.

    A folder keeps its trailing `/`. Models wrap paths in backticks and add
    notes after them ("relay/api/events.py (new)"); both go. A class name
    given as a path names no file ("" for it): Qwen2.5-Coder-1.5B listed
    `EndpointRepository` and `DeliveryService` after the TDD's files, which
    the tree drew at its root.
    """
    words = str(path).replace("\\", "/").split()
    text = words[0].strip("`'\"") if words else ""
    text = re.sub(r"^(?:\./|/)+", "", text)
    text = re.sub(r"/{2,}", "/", text)
    if _CLASS_NAME.match(text):
        return ""
    return "" if text in ("", ".", "/") or not re.search(r"\w", text) else text


def _one_line(text: str) -> str:
    line = " ".join(str(text).split()).lstrip("#").strip()
    return line[:-1] if line.endswith(".") and not line.endswith("..") else line


def _insert(root: _Node, path: str, holds: str) -> None:
    names = [n for n in path.split("/") if n]
    node = root
    for i, name in enumerate(names):
        node = node.children.setdefault(name, _Node())
        if i < len(names) - 1:
            node.folder = True
    node.folder = node.folder or path.endswith("/")
    node.holds = node.holds or holds


def _lines(node: _Node, prefix: str) -> list[tuple[str, str]]:
    """(drawn name, comment) for every node below `node`, depth first, in given order."""
    out: list[tuple[str, str]] = []
    items = list(node.children.items())
    for i, (name, child) in enumerate(items):
        last = i == len(items) - 1
        label = name + ("/" if child.folder or child.children else "")
        out.append((f"{prefix}{'└── ' if last else '├── '}{label}", child.holds))
        out.extend(_lines(child, prefix + ("    " if last else "│   ")))
    return out


def draw_tree(rows: list[dict[str, Any]]) -> str:
    """The rows as a tree, each line with `# what it holds`; "" when no row names a path.

    Paths that all start in one folder are drawn under it as the root line;
    otherwise the root is `.` (the repository). Order is the rows' order; a
    path given twice keeps its first comment.
    """
    root = _Node()
    for row in rows:
        path = clean_path(str(row.get("path", "")))
        if path:
            _insert(root, path, _one_line(str(row.get("holds", ""))))
    if not root.children:
        return ""
    head, top = ".", root
    if len(root.children) == 1:
        name, only = next(iter(root.children.items()))
        if only.children:
            head, top = f"{name}/", only
            if only.holds:
                head += f"  # {only.holds}"
    drawn = _lines(top, "")
    width = min(_ALIGN_MAX, max(len(name) for name, _ in drawn))
    body = [f"{name.ljust(width)}  # {holds}" if holds else name for name, holds in drawn]
    return "\n".join([head, *body])


def add_missing(
    rows: list[dict[str, Any]], files: list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """`rows` and, after them, each of the TDD's `files` (path, what it holds) they
    leave out, up to `MAX_ROWS` drawn rows in all; and the paths added.

    A file counts as drawn when a row names its path, or a row's path and its
    own end the same way (`worker.py` for `relay/delivery/worker.py`).
    """
    drawn = {p for row in rows if (p := clean_path(str(row.get("path", ""))))}
    out, added = list(rows), []
    for path, holds in files:
        path = clean_path(path)
        if not path or any(
            d == path or d.endswith("/" + path) or path.endswith("/" + d) for d in drawn
        ):
            continue
        if len(drawn) >= MAX_ROWS:
            break
        out.append({"path": path, "holds": holds})
        drawn.add(path)
        added.append(path)
    return out, added
