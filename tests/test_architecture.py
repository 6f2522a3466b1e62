"""The structure issue #13 asks for, checked on the code itself.

One direction of dependencies (import-linter's layers contract, in
pyproject.toml), no import cycle even counting imports inside functions and
under TYPE_CHECKING, every module saying what it owns, and every
function-local import saying why it is local.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "research")


def modules() -> dict[str, Path]:
    """Every module of ours by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(
    name: str, path: Path, known: dict[str, Path]
) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Each import statement of ours in a module, with the module it reaches."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != name:
                yield node, ".".join(parts)


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        edges[name].update(target for _, target in imported(name, path, known))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_even_counting_imports_inside_functions() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_layers_contract_holds() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is not installed: run `uv sync` (it is a dev dependency)")
    done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_every_module_says_what_it_owns() -> None:
    missing = [
        name
        for name, path in modules().items()
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert missing == []


def _local_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Imports of our own modules inside a function body: (line, statement)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and not node.level:
                top = (node.module or "").split(".")[0]
                if top in PACKAGES:
                    yield node.lineno, node.module or ""
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in PACKAGES:
                        yield node.lineno, alias.name


def test_function_local_imports_of_our_modules_say_why() -> None:
    """A local import is for start-up speed, never to dodge a cycle, and says so.

    The comment sits on one of the three lines above the import (or the first
    import of a group): the word "lazy" and why.
    """
    unexplained: list[str] = []
    for path in modules().values():
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno, module in _local_imports(path):
            above = lines[max(0, lineno - 8) : lineno - 1]
            if not any("lazy" in line.lower() and "#" in line for line in above):
                unexplained.append(f"{path.relative_to(ROOT)}:{lineno} {module}")
    assert unexplained == []


# The argument parser is a declarative table, long by nature (one entry per flag).
LONG_BY_DESIGN = {"agent/cli/parser.py:build_parser"}
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500


def test_functions_and_modules_stay_small() -> None:
    too_long: list[str] = []
    for path in modules().values():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT).as_posix()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{where}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES and f"{where}:{node.name}" not in LONG_BY_DESIGN:
                    too_long.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []


def test_architecture_page_is_generated_from_the_code() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "architecture.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
