"""The manifests and lock files of the codebase index, read with `tomllib` and `json`.

pyproject.toml (dependencies, optional and group dependencies, scripts),
uv.lock and poetry.lock, requirements*.txt, package.json (dependencies, bin)
and package-lock.json. Imports only the check model; nothing of agent outside
agent.check.
"""

from __future__ import annotations

import json
import re
import tomllib

from agent.check.model import CodeIndex, Dependency, Loc, norm_package


def _line_containing(text: str, needle: str, default: int = 1) -> int:
    """The 1-based line where `needle` first occurs in `text` (else `default`)."""
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else default


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def _add_requirement(index: CodeIndex, req: str, text: str, rel: str) -> None:
    m = _REQ_NAME.match(req)
    if not m:
        return
    spec = m.group(2).split(";")[0].strip()
    name = norm_package(m.group(1))
    line = _line_containing(text, f'"{req}') if f'"{req}' in text else _line_containing(text, req)
    index.deps[name].append(Dependency(name, spec, "pypi", Loc(rel, line)))


def index_pyproject(index: CodeIndex, text: str, rel: str) -> None:
    data = tomllib.loads(text)
    project = data.get("project", {})
    for req in project.get("dependencies", []):
        _add_requirement(index, req, text, rel)
    for reqs in project.get("optional-dependencies", {}).values():
        for req in reqs:
            _add_requirement(index, req, text, rel)
    for reqs in data.get("dependency-groups", {}).values():
        for req in reqs:
            if isinstance(req, str):
                _add_requirement(index, req, text, rel)
    for script in project.get("scripts", {}):
        index.programs[script] = Loc(rel, _line_containing(text, f"{script} ="))
    if project.get("name"):
        index.deps[norm_package(project["name"])].append(
            Dependency(norm_package(project["name"]), "", "pypi", Loc(rel, 1))
        )


def index_uv_lock(index: CodeIndex, text: str, rel: str) -> None:
    data = tomllib.loads(text)
    for package in data.get("package", []):
        name, version = package.get("name"), package.get("version")
        if name and version:
            line = _line_containing(text, f'name = "{name}"\nversion = "{version}"')
            index.locked.setdefault(norm_package(name), (str(version), Loc(rel, line)))


def index_requirements(index: CodeIndex, text: str, rel: str) -> None:
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = _REQ_NAME.match(line)
        if m:
            name = norm_package(m.group(1))
            spec = m.group(2).split(";")[0].strip()
            index.deps[name].append(Dependency(name, spec, "pypi", Loc(rel, n)))
            if spec.startswith("==") and "," not in spec:
                index.locked.setdefault(name, (spec[2:], Loc(rel, n)))


def index_package_json(index: CodeIndex, text: str, rel: str) -> None:
    data = json.loads(text)
    if not isinstance(data, dict):
        return
    for key in ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies"):
        for name, spec in (data.get(key) or {}).items():
            line = _line_containing(text, f'"{name}"')
            index.deps[name.lower()].append(
                Dependency(name.lower(), str(spec), "npm", Loc(rel, line))
            )
    bin_field = data.get("bin")
    if isinstance(bin_field, str) and data.get("name"):
        index.programs[str(data["name"]).split("/")[-1]] = Loc(rel, _line_containing(text, '"bin"'))
    elif isinstance(bin_field, dict):
        for name in bin_field:
            index.programs[name] = Loc(rel, _line_containing(text, f'"{name}"'))
    if data.get("name"):
        index.deps[str(data["name"]).lower()].append(
            Dependency(str(data["name"]).lower(), "", "npm", Loc(rel, 1))
        )


def index_package_lock(index: CodeIndex, text: str, rel: str) -> None:
    data = json.loads(text)
    packages = data.get("packages") or {}
    for key, info in packages.items():
        if not key.startswith("node_modules/") or "/node_modules/" in key:
            continue
        name = key.removeprefix("node_modules/").lower()
        if isinstance(info, dict) and info.get("version"):
            line = _line_containing(text, f'"{key}"')
            index.locked.setdefault(name, (str(info["version"]), Loc(rel, line)))
    for name, info in (data.get("dependencies") or {}).items():
        if isinstance(info, dict) and info.get("version"):
            line = _line_containing(text, f'"{name}"')
            index.locked.setdefault(name.lower(), (str(info["version"]), Loc(rel, line)))
