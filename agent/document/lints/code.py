"""Code lints: blocks in languages we can parse must parse and be what their tag says.

The entry point (`run`) calls `lint_code`, and drafting asks `code_error` whether
a code part parses. Imports `agent.core` and the shared reading module only.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
import tomllib
from typing import Any

import yaml

from agent.core.diagram import mermaid_errors
from agent.document.lints.reading import CodeBlock, Finding, finding

LANGUAGES = {
    "py": "python",
    "python": "python",
    "python3": "python",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "bash": "shell",
    "sh": "shell",
    "shell": "shell",
    "zsh": "shell",
    "mermaid": "mermaid",
}
_TS_HINT = re.compile(
    r"^\s*(?:export\s|interface\s+\w+|const\s+\w+\s*[:=]|let\s+\w+\s*[:=]|"
    r"import\s+.*\s+from\s+['\"]|function\s+\w+\s*\(|type\s+\w+\s*=)",
    re.M,
)
_PY_HINT = re.compile(r"^\s*(?:def\s+\w+\s*\(|class\s+\w+[:(]|from\s+[\w.]+\s+import\s)", re.M)


def _python_error(code: str) -> str | None:
    try:
        ast.parse(textwrap.dedent(code))
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    return None


def _json_value(code: str) -> Any:
    try:
        return json.loads(code)
    except ValueError:
        return None


def _parse_error(lang: str, code: str) -> str | None:
    """Why the block does not parse as its language, or None when it does."""
    if lang == "python":
        return _python_error(code)
    if lang == "json":
        try:
            json.loads(code)
        except json.JSONDecodeError as e:
            return f"line {e.lineno}: {e.msg}"
        return None
    if lang == "yaml":
        try:
            list(yaml.safe_load_all(code))
        except yaml.YAMLError as e:
            return str(e).splitlines()[0]
        return None
    if lang == "toml":
        try:
            tomllib.loads(code)
        except tomllib.TOMLDecodeError as e:
            return str(e)
        return None
    if lang == "mermaid":
        errors = mermaid_errors(code)
        return f"line {errors[0][0]}: {errors[0][1]}" if errors else None
    return None


def code_error(language: str, code: str) -> str | None:
    """Why code tagged `language` does not parse, or None (also for languages not parsed)."""
    lang = LANGUAGES.get(language.lower(), "")
    return None if lang in ("", "shell") else _parse_error(lang, code)


def _looks_like(lang: str, code: str) -> str | None:
    """The language a block's content really is when it is not its tag's, else None."""
    stripped = code.strip()
    if not stripped:
        return None
    if lang == "python":
        value = _json_value(stripped)
        if isinstance(value, dict | list) and stripped[0] in "{[":
            return "JSON"
        if _python_error(code) and len(_TS_HINT.findall(code)) >= 2:
            return "TypeScript/JavaScript"
        return None
    if lang == "json" and _json_value(stripped) is None:
        if _PY_HINT.search(code) and not _python_error(code):
            return "Python"
        if _TS_HINT.search(code):
            return "TypeScript/JavaScript"
        return None
    if lang in {"yaml", "toml", "shell"} and _PY_HINT.search(code) and not _python_error(code):
        return "Python"
    return None


def lint_code(blocks: list[CodeBlock]) -> tuple[list[Finding], int, int]:
    """Blocks in languages we can parse must parse and be what their tag says.

    Returns the findings, the number of blocks checked and how many were fine.
    """
    findings: list[Finding] = []
    checked = ok = 0
    for b in blocks:
        lang = LANGUAGES.get(b.language, "")
        if not lang:
            continue
        mismatch = _looks_like(lang, b.code)
        error = None if lang == "shell" else _parse_error(lang, b.code)
        if lang != "shell":
            checked += 1
            ok += not error and not mismatch
        if mismatch:
            findings.append(
                finding(
                    "code.language-mismatch",
                    f"a `{b.language}` block that looks like {mismatch}",
                    section_id=b.section,
                    where=b.where,
                    line=b.line,
                    # Code tagged python that is JSON still parses; a wrong tag
                    # on code that does not parse is the real fault.
                    severity="error" if error else "warning",
                )
            )
        elif error:
            findings.append(
                finding(
                    f"code.{lang}-syntax",
                    f"{lang} block does not parse: {error}",
                    section_id=b.section,
                    where=b.where,
                    line=b.line,
                )
            )
    return findings, checked, ok
