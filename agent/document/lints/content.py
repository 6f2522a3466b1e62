"""Content lints: placeholders, elided code, stub bodies, and unsafe markup.

Imports `agent.core`, the shared reading module and the code languages only.
"""

from __future__ import annotations

import ast
import re
import textwrap

from agent.core.markup import unsafe_markup
from agent.document.lints.code import LANGUAGES
from agent.document.lints.reading import (
    CodeBlock,
    DocSection,
    Finding,
    code_lines,
    finding,
    section_at,
)

_PLACEHOLDERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bTODO\b|\bFIXME\b|\bTBD\b"), "a TODO/FIXME/TBD marker"),
    (
        re.compile(
            r"\[(?:Feature|Component|Service|Module|Project|Your|Insert|Package|Class)"
            r"(?: [A-Za-z]+){1,3}\](?!\()"
        ),
        "a bracketed placeholder",
    ),
    (
        re.compile(r"<(?:your|insert|placeholder)[-_ ][^<>\n]{1,40}>", re.I),
        "an <angle> placeholder",
    ),
]
_ELLIPSIS_PROSE = re.compile(r"^\s*(?:[-*]\s*)?(?:\.{3}|…)\s*$")
_ELLIPSIS_COMMENT = re.compile(r"^\s*(?:#|//|/\*)\s*(?:(?:\.{3}|…).*|.*(?:\.{3}|…)\s*(?:\*/)?)$")
_EXAMPLE_HOST = re.compile(r"example\.(?:com|org|net)", re.I)
_CREDENTIAL = re.compile(
    r"password|passwd|secret|token|api[_-]?key|credential|://[^/\s:@]+:[^@\s]+@", re.I
)


def _stub_functions(code: str) -> list[str]:
    """Functions whose body is only `pass` or `...` (after a docstring)."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return []
    stubs: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        decorators = {ast.unparse(d).split("(")[0].split(".")[-1] for d in node.decorator_list}
        if decorators & {"abstractmethod", "overload"}:
            continue
        body = node.body
        first = body[0] if body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            body = body[1:]
        if len(body) == 1 and (
            isinstance(body[0], ast.Pass)
            or (
                isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and body[0].value.value is Ellipsis
            )
        ):
            stubs.append(node.name)
    return stubs


# Sections whose code the template asks to be complete, not stubs.
_COMPLETE_SECTIONS = {"code_examples", "key_algorithms"}


def _is_complete_example(block: CodeBlock) -> bool:
    heading = block.heading.lower()
    return block.section in _COMPLETE_SECTIONS or "complete" in heading or "example" in heading


def lint_placeholders(
    markdown: str, sections: list[DocSection], blocks: list[CodeBlock]
) -> list[Finding]:
    """No placeholder text, elided code, stub bodies or example.com credentials."""
    findings: list[Finding] = []
    in_code = code_lines(markdown)
    offset = 0
    for number, line in enumerate(markdown.splitlines(keepends=True), 1):
        owner = section_at(sections, offset)
        offset += len(line)
        text = line.rstrip("\n")
        hits: list[str] = [what for pattern, what in _PLACEHOLDERS if pattern.search(text)]
        code = in_code[number - 1]
        if (not code and _ELLIPSIS_PROSE.match(text)) or (code and _ELLIPSIS_COMMENT.match(text)):
            hits.append("elided content (`...`)")
        if _EXAMPLE_HOST.search(text) and _CREDENTIAL.search(text):
            hits.append("an example.com credential")
        for what in hits:
            findings.append(
                finding(
                    "placeholder",
                    f"{what}: {text.strip()[:80]!r}",
                    section=owner,
                    line=number,
                )
            )
    for b in blocks:
        if LANGUAGES.get(b.language) != "python" or not _is_complete_example(b):
            continue
        for name in _stub_functions(b.code):
            findings.append(
                finding(
                    "placeholder",
                    f"function {name}() in a complete example has a bare pass/... body",
                    section_id=b.section,
                    where=b.where,
                    line=b.line,
                )
            )
    return findings


def lint_markup(markdown: str, sections: list[DocSection]) -> list[Finding]:
    """No raw HTML and no link or image with a scheme other than http(s) or mailto.

    Model output is untrusted: `<img src=…>` is a beacon when the page renders,
    `<script>` and `javascript:` links run in some viewers.
    """
    findings: list[Finding] = []
    offset = 0
    for number, line in enumerate(markdown.splitlines(keepends=True), 1):
        owner = section_at(sections, offset)
        offset += len(line)
        if "<" not in line and "](" not in line and "]:" not in line:
            continue
        findings.extend(
            finding("markup.unsafe", f"{what}: remove it", section=owner, line=number)
            for what in unsafe_markup(line)
        )
    # Lines inside fenced code are code: drop what the line-by-line pass found there.
    in_code = code_lines(markdown)
    return [f for f in findings if not (f.line and in_code[f.line - 1])]
