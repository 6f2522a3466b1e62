"""The existing codebase (`--codebase DIR`): pinned versions, the layout, the conventions.

Everything here is read by code from the manifests and the tree, so the facts
are exact: `fastapi==0.115.0` reaches the notes as written, not as a model
remembers it. The passages are marked verbatim and become notes unchanged.
This research source imports only agent.core and research.base (never
agent.check, whose index reads codebases for `tidsmith check`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from agent.core.errors import InputError, RetrievalError
from agent.core.files import read_bytes
from research.base import Passage, Query, ResearchResult

# Folders that hold tool state or installed packages, not the project's layout.
_SKIP_DIRS = {
    "node_modules", "__pycache__", "dist", "build", "target", "venv", "env",
    "site-packages", "htmlcov", "coverage",
}  # fmt: skip
_MANIFESTS = ("pyproject.toml", "package.json", "setup.cfg", "Pipfile")
_LOCKS = ("uv.lock", "poetry.lock", "package-lock.json")
MAX_TREE_LINES = 80
MAX_TREE_DEPTH = 3
MAX_DEPS_PER_LINE = 60
_NAME = re.compile(r"^\s*([A-Za-z0-9@][A-Za-z0-9._/@-]*)")

# Dependency name -> the framework or tool it shows the codebase uses.
_FRAMEWORKS = {
    "fastapi": "FastAPI", "django": "Django", "flask": "Flask", "starlette": "Starlette",
    "sqlalchemy": "SQLAlchemy", "alembic": "Alembic (migrations)", "pydantic": "Pydantic",
    "celery": "Celery", "redis": "Redis client", "httpx": "HTTPX", "requests": "Requests",
    "pytest": "pytest", "pytest-asyncio": "pytest-asyncio", "hypothesis": "Hypothesis",
    "torch": "PyTorch", "transformers": "Hugging Face Transformers", "numpy": "NumPy",
    "pandas": "pandas", "uvicorn": "Uvicorn", "gunicorn": "Gunicorn", "typer": "Typer",
    "click": "Click", "ruff": "Ruff", "mypy": "mypy", "black": "Black",
    "react": "React", "next": "Next.js", "vue": "Vue", "svelte": "Svelte",
    "express": "Express", "typescript": "TypeScript", "jest": "Jest", "vitest": "Vitest",
    "vite": "Vite", "tailwindcss": "Tailwind CSS", "zustand": "Zustand", "axios": "Axios",
}  # fmt: skip


def _norm(name: str) -> str:
    """PEP 503 name normalisation, so `Pydantic_Core` and `pydantic-core` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    if "@" in requirement[1:]:  # `react@18.3.1`, `@types/node@20.1.0`, `pkg @ https://…`
        return requirement[: requirement.index("@", 1)].strip().lower()
    match = _NAME.match(requirement)
    return _norm(match.group(1)) if match else ""


def _pinned(requirement: str) -> bool:
    return "==" in requirement or "===" in requirement


def _read(path: Path) -> str:
    # A manifest is small; a FIFO, a device or a huge file is not one.
    try:
        return read_bytes(path, 1024 * 1024, "manifest").decode("utf-8", errors="replace")
    except InputError:
        return ""


class Declared:
    """Dependencies as the manifests write them, by file and group."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[str]]] = []
        self.names: dict[str, str] = {}  # normalised name -> requirement as written
        self.python = ""

    def add(self, where: str, requirements: list[str]) -> None:
        reqs = [" ".join(r.split()) for r in requirements if r.strip()]
        if not reqs:
            return
        self.groups.append((where, reqs))
        for req in reqs:
            self.names.setdefault(_name(req), req)


def _pyproject(path: Path, declared: Declared) -> dict[str, Any]:
    try:
        data = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError:
        return {}
    project = data.get("project", {})
    declared.python = str(project.get("requires-python", ""))
    declared.add("pyproject.toml [project.dependencies]", list(project.get("dependencies", [])))
    for group, reqs in project.get("optional-dependencies", {}).items():
        declared.add(f"pyproject.toml [project.optional-dependencies.{group}]", list(reqs))
    for group, reqs in data.get("dependency-groups", {}).items():
        declared.add(
            f"pyproject.toml [dependency-groups.{group}]", [r for r in reqs if isinstance(r, str)]
        )
    poetry = data.get("tool", {}).get("poetry", {})
    for table, where in ((poetry.get("dependencies", {}), "[tool.poetry.dependencies]"),):
        reqs = []
        for name, spec in table.items():
            if name == "python":
                declared.python = declared.python or str(spec)
                continue
            version = spec.get("version", "") if isinstance(spec, dict) else str(spec)
            reqs.append(f"{name} {version}".strip())
        declared.add(f"pyproject.toml {where}", reqs)
    return data


def _requirements(path: Path, declared: Declared, root: Path) -> None:
    reqs = []
    for line in _read(path).splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            reqs.append(line)
    declared.add(path.relative_to(root).as_posix(), reqs)


def _package_json(path: Path, declared: Declared) -> None:
    try:
        data = json.loads(_read(path) or "{}")
    except json.JSONDecodeError:
        return
    for group in ("dependencies", "devDependencies"):
        table = data.get(group, {})
        if isinstance(table, dict):
            declared.add(f"package.json {group}", [f"{k}@{v}" for k, v in table.items()])


def _locked(root: Path) -> dict[str, tuple[str, str]]:
    """Resolved versions from lock files: normalised name -> (version, lock file)."""
    found: dict[str, tuple[str, str]] = {}
    for lock in ("uv.lock", "poetry.lock"):
        text = _read(root / lock)
        if not text:
            continue
        try:
            packages = tomllib.loads(text).get("package", [])
        except tomllib.TOMLDecodeError:
            continue
        for package in packages:
            if isinstance(package, dict) and "name" in package and "version" in package:
                found.setdefault(_norm(str(package["name"])), (str(package["version"]), lock))
    text = _read(root / "package-lock.json")
    if text:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = {}
        for key, info in data.get("packages", {}).items():
            if key.startswith("node_modules/") and isinstance(info, dict) and "version" in info:
                name = key.removeprefix("node_modules/")
                found.setdefault(name.lower(), (str(info["version"]), "package-lock.json"))
        for name, info in data.get("dependencies", {}).items():  # lockfile v1
            if isinstance(info, dict) and "version" in info:
                found.setdefault(name.lower(), (str(info["version"]), "package-lock.json"))
    return found


def _tree(root: Path) -> tuple[list[str], list[Path]]:
    """An indented listing (bounded in depth and lines) and every file path seen."""
    lines = [f"{root.name}/"]
    files: list[Path] = []
    truncated = False
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        if depth >= MAX_TREE_DEPTH:
            dirnames[:] = []
        files.extend(here / f for f in filenames)
        if here != root:
            if len(lines) < MAX_TREE_LINES:
                lines.append(f"{'  ' * depth}{here.name}/")
            else:
                truncated = True
        for name in sorted(filenames):
            if name.startswith(".") and name not in {".pre-commit-config.yaml", ".env.example"}:
                continue
            if len(lines) < MAX_TREE_LINES:
                lines.append(f"{'  ' * (depth + 1)}{name}")
            else:
                truncated = True
    if truncated:
        lines.append("  … (listing cut at 80 lines)")
    return lines, files


_TEST_FILE = re.compile(r"^(test_.*\.py|.*_test\.py|.*\.(test|spec)\.[jt]sx?)$")
_TOOLS = ("ruff", "mypy", "black", "pytest", "coverage", "basedpyright")


def _conventions(
    root: Path, files: list[Path], declared: Declared, data: dict[str, Any]
) -> list[str]:
    facts: list[str] = []
    rel = [f.relative_to(root) for f in files]
    tests = [p for p in rel if _TEST_FILE.match(p.name)]
    if tests:
        folders = sorted({p.parts[0] for p in tests if len(p.parts) > 1})
        where = ", ".join(f"{f}/" for f in folders) or "beside the code"
        facts.append(f"Tests: {len(tests)} test files in {where} (e.g. {tests[0].as_posix()})")
    if any(p.name == "conftest.py" for p in rel):
        facts.append("pytest fixtures live in conftest.py")
    if (root / "src").is_dir():
        src = (root / "src").iterdir()
        packages = sorted(p.name for p in src if p.is_dir() and not p.name.startswith("."))
        facts.append(f"Layout: src layout (src/{', src/'.join(packages) or ''})")
    else:
        packages = sorted(
            p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
        )
        if packages:
            facts.append(f"Layout: top-level packages {', '.join(packages)}")
    used = sorted({_FRAMEWORKS[n] for n in declared.names if n in _FRAMEWORKS})
    if used:
        facts.append(f"Frameworks and tools: {', '.join(used)}")
    tool = data.get("tool", {})
    configured = [t for t in _TOOLS if t in tool]
    if configured:
        facts.append(f"Configured in pyproject.toml [tool.*]: {', '.join(configured)}")
    markers = {
        "Dockerfile": "Dockerfile", "docker-compose.yml": "docker-compose.yml",
        "compose.yaml": "compose.yaml", "Makefile": "Makefile", "tox.ini": "tox.ini",
        "noxfile.py": "noxfile.py", ".pre-commit-config.yaml": "pre-commit hooks",
        "alembic.ini": "Alembic migrations",
    }  # fmt: skip
    present = [label for name, label in markers.items() if (root / name).exists()]
    if (root / ".github" / "workflows").is_dir():
        present.append("GitHub Actions workflows")
    if present:
        facts.append(f"Build and CI files: {', '.join(present)}")
    if declared.python:
        facts.append(f"Python: requires-python {declared.python}")
    return facts


class CodebaseSource:
    """The facts of one existing codebase; the same passages whatever the queries."""

    kind = "codebase"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.name = self.root.name or str(self.root)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(str(self.root.resolve()).encode())
        if not self.root.is_dir():
            return digest.hexdigest() + ":missing"
        for name in (*_MANIFESTS, *_LOCKS):
            digest.update(f"{name}\0{_read(self.root / name)}\0".encode())
        for path in sorted(self.root.glob("requirements*.txt")):
            digest.update(f"{path.name}\0{_read(path)}\0".encode())
        lines, _ = _tree(self.root)
        digest.update("\n".join(lines).encode())
        return digest.hexdigest()

    def passages(self) -> list[Passage]:
        if not self.root.is_dir():
            raise RetrievalError(f"codebase folder {self.root} does not exist or is not a folder")
        declared = Declared()
        data: dict[str, Any] = {}
        if (self.root / "pyproject.toml").is_file():
            data = _pyproject(self.root / "pyproject.toml", declared)
        for path in sorted(self.root.glob("requirements*.txt")):
            _requirements(path, declared, self.root)
        if (self.root / "package.json").is_file():
            _package_json(self.root / "package.json", declared)
        locked = _locked(self.root)
        tree, files = _tree(self.root)
        facts = _conventions(self.root, files, declared, data)
        parts = [
            ("dependencies", "dependency versions", self._dependencies(declared, locked)),
            ("conventions", "conventions", "\n".join(f"- {f}" for f in facts)),
            ("tree", "directory tree", "\n".join(tree)),
        ]
        return [
            Passage(
                source_id=f"codebase:{self.name}:{part}",
                kind=self.kind,
                title=f"{self.name}: {title}",
                location=f"{self.root}/",
                text=text,
                path=str(self.root.resolve()),
                verbatim=True,
            )
            for part, title, text in parts
            if text
        ]

    def _dependencies(self, declared: Declared, locked: dict[str, tuple[str, str]]) -> str:
        lines: list[str] = []
        for where, reqs in declared.groups:
            shown = reqs[:MAX_DEPS_PER_LINE]
            more = f" (+{len(reqs) - len(shown)} more)" if len(reqs) > len(shown) else ""
            lines.append(f"- {where}: {', '.join(shown)}{more}")
        # A range in the manifest says little; the lock file says what actually runs.
        resolved = []
        for name, req in declared.names.items():
            if name in locked and not _pinned(req):
                version, lock = locked[name]
                joiner = "@" if "@" in req else "=="
                resolved.append(f"{name}{joiner}{version} ({lock})")
        if resolved:
            lines.append(f"- resolved by lock file: {', '.join(resolved[:MAX_DEPS_PER_LINE])}")
        if not lines:
            return ""
        return "The codebase declares these dependencies (exact pins as written):\n" + "\n".join(
            lines
        )

    async def search(self, queries: list[Query], limit: int) -> list[Passage]:
        # Off the event loop: walking and reading a codebase must not hold up Ctrl-C.
        return await asyncio.to_thread(self.passages)


_PIN = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][^\s,;)\]]*)")


def pinned_versions(result: ResearchResult) -> dict[str, str]:
    """name -> version for every exact pin in the codebase facts (for the dependency lint)."""
    pins: dict[str, str] = {}
    for note in result.notes:
        if note.by_code:
            for name, version in _PIN.findall(note.text):
                pins.setdefault(_norm(name), version)
    return pins
