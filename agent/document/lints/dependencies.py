"""Dependency lints: every dependency pinned to an exact version that agrees with the codebase.

Imports the shared reading module and the code languages only (no `agent` module
above `agent.core`).
"""

from __future__ import annotations

import re

from agent.document.lints.code import LANGUAGES
from agent.document.lints.reading import CodeBlock, DocSection, Finding, finding, markdown_tables

_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*"
    r"(?P<spec>(?:===?|~=|>=|<=|!=|>|<)\s*[^\s;,#]+(?:\s*,\s*(?:===?|~=|>=|<=|!=|>|<)\s*[^\s;,#]+)*)?"
    r"\s*(?:;.*)?$"
)
_INSTALL = re.compile(r"\b(?:pip3?|uv pip|uv|poetry|pipx)\s+(?:install|add)\s+(.+)$")
_OPTION_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i"}
_DEP_FILE = re.compile(r"requirements[\w.-]*\.txt$|pyproject\.toml$|setup\.cfg$", re.I)


def canonical_name(name: str) -> str:
    """A package name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_specs(blocks: list[CodeBlock]) -> list[tuple[str, str, CodeBlock]]:
    """(package, version spec, block) for requirement lines and install commands."""
    found: list[tuple[str, str, CodeBlock]] = []
    for b in blocks:
        lang = LANGUAGES.get(b.language, b.language)
        context = f"{b.heading} {b.where}".lower()
        listing = lang in {"", "text", "txt", "requirements", "pip", "toml", "ini", "cfg"} and (
            "depend" in context or "requirement" in context or bool(_DEP_FILE.search(b.path))
        )
        for raw in b.code.splitlines():
            line = raw.split("#", 1)[0].strip()
            if lang == "shell":
                install = _INSTALL.search(line)
                if not install:
                    continue
                skip_next = False
                for arg in install.group(1).split():
                    arg = arg.strip("'\"")
                    if skip_next or arg.startswith("-"):
                        # `-r file`, `-e path`, `-i url` take a value that is no package.
                        skip_next = arg in _OPTION_WITH_VALUE
                        continue
                    if arg in {".", ".."} or "/" in arg or re.search(r"\.(txt|toml|whl)$", arg):
                        continue
                    match = _REQUIREMENT.match(arg)
                    if match:
                        found.append((match.group("name"), match.group("spec") or "", b))
                continue
            if not listing:
                continue
            line = line.strip("\"', ")
            if not line or line.startswith(("[", "-")) or re.match(r"^[\w.-]+\s*=\s", line):
                continue
            match = _REQUIREMENT.match(line)
            if match and not match.group("name").isdigit():
                found.append((match.group("name"), (match.group("spec") or "").strip(), b))
    return found


def lint_dependencies(
    blocks: list[CodeBlock],
    sections: list[DocSection],
    codebase_versions: dict[str, str] | None = None,
) -> list[Finding]:
    """Every dependency carries an exact version, and agrees with the codebase when known."""
    findings: list[Finding] = []
    known = {canonical_name(k): v for k, v in (codebase_versions or {}).items()}
    for name, spec, b in dependency_specs(blocks):
        where = {"section_id": b.section, "where": b.where, "line": b.line}
        if not spec:
            findings.append(
                finding("deps.unpinned", f"{name} has no version (pin it with ==)", **where)
            )
            continue
        exact = re.match(r"^===?\s*(\S+)$", spec)
        if not exact:
            findings.append(
                finding(
                    "deps.range",
                    f"{name}{spec} is a range; the seed asks for an exact == version",
                    severity="warning",
                    **where,
                )
            )
        pinned = known.get(canonical_name(name))
        if exact and pinned and exact.group(1) != pinned.lstrip("=v^~ "):
            findings.append(
                finding(
                    "deps.version-mismatch",
                    f"{name}=={exact.group(1)} but the codebase uses {pinned}",
                    **where,
                )
            )
    for section in sections:
        findings.extend(_table_versions(section, known))
    return findings


def _table_versions(section: DocSection, known: dict[str, str]) -> list[Finding]:
    """Rows of a section's tables with a Version column: a number, and the codebase's."""
    findings: list[Finding] = []
    for table in markdown_tables(section.text):
        header = [c.lower() for c in table[0]]
        if "version" not in header:
            continue
        col = header.index("version")
        for row in table[1:]:
            cell = row[col] if col < len(row) else ""
            label = " ".join(c for i, c in enumerate(row) if i != col)[:60]
            if not re.search(r"\d", cell):
                findings.append(
                    finding(
                        "deps.unpinned",
                        f"{label!r} has no version ({cell or 'empty'!r})",
                        section=section,
                    )
                )
                continue
            for key, value in known.items():
                if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", label.lower()):
                    version = re.search(r"\d[\w.]*", cell)
                    if version and version.group(0) != value.lstrip("=v^~ "):
                        findings.append(
                            finding(
                                "deps.version-mismatch",
                                f"{key} {version.group(0)} but the codebase uses {value}",
                                section=section,
                            )
                        )
    return findings
