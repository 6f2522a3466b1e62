"""Claims: the concrete, checkable things a markdown document says about a codebase.

The document is read with markdown-it-py (fences, inline code, headings, HTML
comments), never with regexes over raw lines. Only code spans and code blocks
are read: prose is not a claim. A code span is a claim when its shape says
what it is (`src/x.py` a path, `Foo.bar()` a symbol, `GET /v1/x` an endpoint,
`FOO_BAR` an environment variable, `--flag` a CLI flag, `pkg==1.2` a package
with a version); a code block is read by its language (Python with `ast`,
shell lines as commands, TOML/JSON manifests, file trees). Anything else is
not a claim, so words in backticks do not become false alarms.

`<!-- tidsmith-check: ignore -->` skips the next block; `<!-- tidsmith-check:
off -->` ... `<!-- tidsmith-check: on -->` skips everything between: for
example file names a reader would create, which no codebase holds.

This module walks the document and reads code spans; code blocks are read in
`agent.check.code_blocks`. Imports only agent.check's own modules.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from agent.check.code_blocks import (
    HTTP_METHODS,
    NPM_REQ,
    PY_REQ,
    block_claims,
    command_claims,
)
from agent.check.model import Claim, ClaimKind

__all__ = ["Claim", "ClaimKind", "classify_span", "extract_claims"]

_PARSER = MarkdownIt("commonmark").enable("table")

_ENDPOINT = re.compile(rf"^({HTTP_METHODS})\s+(/\S*)$")
_FLAG = re.compile(r"^--[a-z][a-z0-9-]*(?:[ =].*)?$")
_ENV = re.compile(r"^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=\S*)?$")
_EXT = (
    "py|pyi|ts|tsx|js|jsx|mjs|cjs|json|toml|yaml|yml|md|txt|lock|cfg|ini|sh|sql|html|css|gguf|env"
)
_PATH = re.compile(rf"^(?:\.{{0,2}}/)?[\w.@-]+(?:/[\w.@-]+)*/?$|^[\w.@-]+\.(?:{_EXT})$")
_HAS_EXT = re.compile(rf"\.(?:{_EXT})$")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
_CALL = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\((.*)\)$")
_CAMEL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$")
_LOWER_CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]*)+$")
_SNAKE = re.compile(r"^_?[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")
_NEW = re.compile(
    r"^\s*[(\[\u2014\u2013-]*\s*(?:new|planned|to be (?:added|created|written))\b", re.I
)
_DIRECTIVE = re.compile(r"<!--\s*tidsmith-check:\s*(ignore|off|on)\s*-->")
_TLDS = {"com", "org", "net", "io", "dev", "ai", "example"}


def extract_claims(
    markdown: str, doc: str = "", programs: frozenset[str] = frozenset()
) -> list[Claim]:
    """Every claim in a markdown document, in document order.

    `programs` are the CLI names the codebase declares (`[project.scripts]`,
    package.json `bin`): shell lines running one of them are command claims.
    """
    lines = markdown.splitlines()
    claims: list[Claim] = []
    section = ""
    skip_next = False
    off = False
    pending_file = ""
    tokens = _PARSER.parse(markdown)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token.type in ("html_block", "html_inline") or (
            token.type == "inline" and "tidsmith-check" in token.content
        ):
            for match in _DIRECTIVE.finditer(token.content):
                what = match.group(1)
                skip_next = what == "ignore"
                off = what == "off" or (off and what != "on")
            continue
        if token.type == "heading_open" and token.tag in ("h1", "h2"):
            section = tokens[i].content.strip()
        if off:
            continue
        if skip_next and token.nesting >= 0 and token.block:
            # Skip this whole block: a fence, or everything up to the matching close.
            skip_next = False
            if token.nesting == 1:
                depth = 1
                while i < len(tokens) and depth:
                    depth += tokens[i].nesting
                    i += 1
            pending_file = ""
            continue
        if token.type == "fence" and token.map is not None:
            for claim in block_claims(token, pending_file, programs):
                claims.append(claim.model_copy(update={"doc": doc, "section": section}))
            pending_file = ""
        elif token.type == "inline" and token.map is not None:
            for claim, file_hint in _inline_claims(token, lines, programs):
                if file_hint:
                    pending_file = claim.value
                claims.append(claim.model_copy(update={"doc": doc, "section": section}))
    return claims


def _line_of(value: str, lines: list[str], start: int, end: int) -> int:
    """The 1-based line in [start, end) holding `value` in backticks (else `start`)."""
    for n in range(start, min(end, len(lines))):
        if value in lines[n]:
            return n + 1
    return start + 1


def _inline_claims(
    token: Token, lines: list[str], programs: frozenset[str]
) -> list[tuple[Claim, bool]]:
    """Claims in one paragraph's code spans; the bool marks a `File:` line's path."""
    assert token.map is not None
    children = token.children or []
    out: list[tuple[Claim, bool]] = []
    for n, child in enumerate(children):
        if child.type != "code_inline":
            continue
        before = children[n - 1].content if n > 0 and children[n - 1].type == "text" else ""
        after = children[n + 1].content if n + 1 < len(children) else ""
        line = _line_of(child.content, lines, token.map[0], token.map[1])
        claim = classify_span(child.content.strip(), line, programs)
        if claim is None:
            continue
        if _NEW.match(after) or re.search(r"\b(?:a|the) new\s*$", before, re.I):
            claim = claim.model_copy(update={"new": True})
        is_file = claim.kind == "path" and bool(re.search(r"(?:File|Path):\s*$", before, re.I))
        if claim.kind == "command":
            out.extend((c, False) for c in command_claims(child.content, line, programs))
            continue
        out.append((claim, is_file))
    return out


def classify_span(text: str, line: int, programs: frozenset[str] = frozenset()) -> Claim | None:
    """What a code span claims, by its shape; None when it claims nothing checkable."""
    if not text or "://" in text:
        return None
    if m := _ENDPOINT.match(text):
        return Claim(kind="endpoint", value=m.group(2), method=m.group(1), line=line)
    if m := _CALL.match(text):
        params = _call_params(m.group(2))
        return Claim(kind="symbol", value=m.group(1), params=params, line=line)
    if any(c in text for c in "<>{}*$"):
        return None  # a placeholder or a pattern, not a name
    first = text.split()[0]
    if first in programs:
        return Claim(kind="command", value=text, program=first, line=line)
    if _FLAG.match(text):
        return Claim(kind="flag", value=re.split(r"[ =]", text)[0], line=line)
    if m := PY_REQ.match(text):
        return Claim(
            kind="package", value=m.group(1), version=m.group(2).replace(" ", ""),
            ecosystem="pypi", line=line,
        )  # fmt: skip
    if m := NPM_REQ.match(text):
        return Claim(
            kind="package", value=m.group(1), version=m.group(2), ecosystem="npm", line=line
        )
    if " " in text:
        return None
    if m := _ENV.match(text):
        return Claim(kind="env", value=m.group(1), line=line)
    if ("/" in text or _HAS_EXT.search(text)) and _PATH.match(text):
        if text.startswith(("/", "~", "-")) or re.match(r"^\.\w+$", text):
            return None
        return Claim(kind="path", value=text.removeprefix("./").rstrip("/"), line=line)
    if _DOTTED.match(text) and text.rsplit(".", 1)[-1] in _TLDS:
        return None  # a host name, not a module
    if any(p.match(text) for p in (_DOTTED, _CAMEL, _LOWER_CAMEL, _SNAKE)):
        return Claim(kind="symbol", value=text, line=line)
    return None


def _call_params(args: str) -> list[str] | None:
    """Parameter names in `f(a, b)` or `f(a=1, b=2)`; None when it names none (`f()`, `f(...)`).

    Literals are skipped: `f(1, "x")` claims nothing about parameter names.
    """
    names = [
        m.group(1)
        for arg in args.split(",")
        if (m := re.match(r"^\s*\*{0,2}([A-Za-z_]\w*)\s*(?:[:=].*)?$", arg))
        and m.group(1) not in ("None", "True", "False", "self")
    ]
    return names or None
