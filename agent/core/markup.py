"""Markup that must not reach a document from model output: raw HTML and unsafe links.

A model's reply is untrusted text (it read the TDD and research notes, which
anyone may have written). Rendered as markdown, `<img src="http://…?d=…">`
is a beacon, `<script>` runs in some viewers, and `[x](javascript:…)` runs on
a click. `safe_prose` neutralises them in the prose parts of a section
(assemble); `unsafe_markup` finds them in any document (the review lint).
Code blocks and inline code are left alone: there, `<div>` is code.
Imports only `agent.core.markdown`.
"""

from __future__ import annotations

import html
import re

from agent.core import markdown

# Schemes a document may link to; anything else (javascript:, data:, file:, vbscript:) goes.
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(([^)\n]*)\)")
_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\(([^)\n]*)\)")
_DEFINITION = re.compile(r"^(\s{0,3}\[[^\]\n]+\]:)\s*(\S+).*$", re.MULTILINE)
_INLINE_CODE = re.compile(r"(`+)(?:.+?)\1", re.DOTALL)
# Elements a lint names as raw HTML (so `List<String>` in prose is not one).
_ELEMENTS = (
    "a|abbr|audio|b|base|body|br|button|canvas|code|details|div|em|embed|form|frame|frameset"
    "|h[1-6]|head|hr|html|i|iframe|img|input|link|marquee|math|meta|noscript|object|option|p"
    "|picture|pre|script|select|source|span|strong|style|sub|summary|sup|svg|table|td|template"
    "|textarea|th|tr|u|video"
)
_HTML_TAG = re.compile(rf"<(?:/?(?:{_ELEMENTS})(?=[\s/>])[^<>]*>|!--)", re.IGNORECASE)
# Where a tag starts: a known element, a comment or declaration, or any tag with
# attributes (`<x onclick=…>`). `<reason>` and `List<String>` stay as written.
_TAG_START = re.compile(
    rf"<(?=/?(?:{_ELEMENTS})[\s/>]|[!?]|/?[A-Za-z][\w:-]*\s[^<>]*=)", re.IGNORECASE
)


def unsafe_target(target: str) -> bool:
    """Whether a link or image target uses a scheme other than http(s) or mailto."""
    # Renderers decode entities and drop whitespace in targets: `java&#115;cript:` too.
    plain = re.sub(r"[\s\x00-\x1f]+", "", html.unescape(target.strip().strip("<>")))
    match = _SCHEME.match(plain)
    return bool(match) and match.group(1).lower() not in SAFE_SCHEMES


def _segments(text: str) -> list[tuple[str, bool]]:
    """The text cut into (piece, is_code): fenced blocks and inline code are code."""
    if "```" not in text and "~~~" not in text:
        return _inline(text) if text else []
    document = markdown.parse(text)
    pieces: list[tuple[str, bool]] = []
    prose: list[str] = []
    for line, code in zip(document.lines, document.code_mask(), strict=True):
        if not code:
            prose.append(line)
            continue
        if prose:
            pieces.extend(_inline("".join(prose)))
            prose = []
        pieces.append((line, True))
    if prose:
        pieces.extend(_inline("".join(prose)))
    return pieces


def _inline(text: str) -> list[tuple[str, bool]]:
    pieces: list[tuple[str, bool]] = []
    at = 0
    for match in _INLINE_CODE.finditer(text):
        pieces.append((text[at : match.start()], False))
        pieces.append((match.group(0), True))
        at = match.end()
    pieces.append((text[at:], False))
    return pieces


def _safe(text: str) -> str:
    # Images load by themselves when the page renders: only their words stay.
    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(lambda m: m.group(1) if unsafe_target(m.group(2)) else m.group(0), text)
    text = _DEFINITION.sub(lambda m: m.group(1) if unsafe_target(m.group(2)) else m.group(0), text)
    # `&lt;` renders as `<`, so the words read the same; the tag is only text now.
    return _TAG_START.sub("&lt;", text)


def safe_prose(text: str) -> str:
    """Model prose with raw HTML escaped, images reduced to their words, unsafe links unlinked."""
    if "<" not in text and "](" not in text and "]:" not in text:
        return text
    return "".join(piece if code else _safe(piece) for piece, code in _segments(text))


def unsafe_markup(text: str) -> list[str]:
    """What in `text` (outside code) is raw HTML or a link with an unsafe scheme."""
    found: list[str] = []
    for piece, code in _segments(text):
        if code:
            continue
        found.extend(f"raw HTML {m.group(0)[:40]!r}" for m in _HTML_TAG.finditer(piece))
        for pattern in (_IMAGE, _LINK):
            found.extend(
                f"a link to {m.group(2)[:40]!r}"
                for m in pattern.finditer(piece)
                if unsafe_target(m.group(2))
            )
        found.extend(
            f"a link to {m.group(2)[:40]!r}"
            for m in _DEFINITION.finditer(piece)
            if unsafe_target(m.group(2))
        )
    return found
