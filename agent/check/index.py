"""What a codebase holds, read with real parsers: `build_index` walks it.

Python files with `ast` (`index_python`); TypeScript and JavaScript with
tree-sitter (`index_typescript`); manifests and lock files (pyproject.toml,
uv.lock, requirements*.txt, package.json, package-lock.json) with `tomllib`
and `json` (`index_manifests`); YAML data files and shell scripts here.
Nothing in the codebase is imported or run. Imports only agent.check's own
modules.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from agent.check.index_manifests import (
    index_package_json,
    index_package_lock,
    index_pyproject,
    index_requirements,
    index_uv_lock,
)
from agent.check.index_python import index_python, python_module
from agent.check.index_typescript import index_typescript
from agent.check.model import (
    STRING_WORTH,
    CodeIndex,
    Definition,
    Dependency,
    Loc,
    Route,
    norm_package,
)

__all__ = [
    "MAX_SOURCE_BYTES",
    "SKIP_DIRS",
    "CodeIndex",
    "Definition",
    "Dependency",
    "Loc",
    "Route",
    "build_index",
    "norm_package",
    "python_module",
]

# Folders that hold no source of the project itself.
SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", "env", "node_modules", "__pycache__",
        ".mypy_cache", ".ruff_cache", ".pytest_cache", ".tox", ".nox", "dist", "build",
        ".tidsmith", ".next", "coverage", "site-packages",
    }
)  # fmt: skip
MAX_SOURCE_BYTES = 1_000_000
_TS_SUFFIXES = {".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts"}


def build_index(root: Path) -> CodeIndex:
    """Walk `root` and index every source file and manifest in it."""
    index = CodeIndex(root=root)
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")
        )
        rel_folder = Path(folder).relative_to(root).as_posix()
        if rel_folder != ".":
            index.dirs.add(rel_folder)
        for name in sorted(filenames):
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            index.files.add(rel)
            index.stems.setdefault(name.split(".")[0], rel)
            path = Path(folder) / name
            try:
                if path.stat().st_size > MAX_SOURCE_BYTES:
                    continue
            except OSError:
                continue
            _index_file(index, path, rel)
    return index


def _index_file(index: CodeIndex, path: Path, rel: str) -> None:
    name = path.name
    try:
        if path.suffix == ".py":
            index_python(index, path.read_text(encoding="utf-8"), rel)
        elif path.suffix in _TS_SUFFIXES and not name.endswith(".d.ts"):
            index_typescript(index, path.read_bytes(), rel)
        elif name == "pyproject.toml":
            index_pyproject(index, path.read_text(encoding="utf-8"), rel)
        elif name == "uv.lock" or name == "poetry.lock":
            index_uv_lock(index, path.read_text(encoding="utf-8"), rel)
        elif re.match(r"^requirements.*\.txt$", name):
            index_requirements(index, path.read_text(encoding="utf-8"), rel)
        elif name == "package.json":
            index_package_json(index, path.read_text(encoding="utf-8"), rel)
        elif name == "package-lock.json":
            index_package_lock(index, path.read_text(encoding="utf-8"), rel)
        elif path.suffix in (".yaml", ".yml") and path.stat().st_size < 200_000:
            _index_yaml(index, path.read_text(encoding="utf-8"), rel)
        elif path.suffix == ".sh" or (not path.suffix and _is_shell(path)):
            _index_shell(index, path.read_text(encoding="utf-8"), rel)
    except (OSError, UnicodeDecodeError, ValueError, SyntaxError, RecursionError):
        index.unparsed.append(rel)


def _index_yaml(index: CodeIndex, text: str, rel: str) -> None:
    """Keys and values of YAML data files (prompt and template ids), with their lines."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        index.unparsed.append(rel)
        return
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if isinstance(node.value, str) and STRING_WORTH.match(node.value):
                index.strings[node.value].append(Loc(rel, node.start_mark.line + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend([key, value])


def _is_shell(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(40)
    except OSError:
        return False
    return head.startswith(b"#!") and (b"sh" in head.split(b"\n")[0])


def _index_shell(index: CodeIndex, text: str, rel: str) -> None:
    """Environment variables a shell script reads (`$NAME`, `${NAME:-x}`)."""
    for n, line in enumerate(text.splitlines(), start=1):
        for name in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", line):
            index.strings[name].append(Loc(rel, n))
