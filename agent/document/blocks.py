"""Code in a section reply that does not parse: found, put back, kept up to where it parses.

Code parts, and fenced python/json/yaml/toml blocks inside text parts, are
checked by parsing them (`agent.document.lints.code_error`); drafting repairs
or drops what fails (`agent.draft.code_repair`) instead of shipping it broken.
Pure code; imports `agent.core` and the document modules only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agent.core import markdown
from agent.core.templates import Part, Section
from agent.document.assemble import code_fence, unfence
from agent.document.lints import code_error
from agent.document.lints.code import LANGUAGES


def parsed(language: str) -> bool:
    """Whether `code_error` really parses this language (else it says None for anything)."""
    return code_error(language, "(") is not None


# The language of a fenced block inside a text part: one word of letters, digits, `+`, `-`.
_FENCE_LANGUAGE = re.compile(r"[\w+-]+")


@dataclass(frozen=True)
class BrokenCode:
    """Code in a section reply that does not parse as its language."""

    part: Part
    language: str
    code: str
    error: str
    # Where the whole fenced block sits in a text part; None for a code part.
    span: tuple[int, int] | None = None


def broken_code(section: Section, content: dict[str, Any]) -> list[BrokenCode]:
    """Code parts, and fenced blocks inside text parts, that do not parse as their language."""
    broken: list[BrokenCode] = []
    for part in section.parts:
        value = content.get(part.id)
        if part.kind == "code" and isinstance(value, dict) and not value.get("dropped"):
            code = unfence(str(value.get("code", "")))
            error = code_error(part.language, code)
            if error is not None:
                broken.append(BrokenCode(part, part.language, code, error))
        elif part.kind == "text" and isinstance(value, str):
            for language, code, span in _text_fences(value):
                error = code_error(language, code)
                if error is not None:
                    broken.append(BrokenCode(part, language, code, error, span))
    # Last first: replacing a block in a text part keeps the spans before it valid.
    return sorted(broken, key=lambda b: -(b.span[0] if b.span else 0))


def _text_fences(text: str) -> Iterator[tuple[str, str, tuple[int, int]]]:
    """Closed fenced blocks at the start of a line in a text part: language, code, span.

    The span runs from the opening fence to the end of the closing one (its
    newline excluded); blocks without a language are not code we can check.
    """
    if "```" not in text and "~~~" not in text:
        return
    document = markdown.parse(text)
    for fence in document.fences:
        opener = document.lines[fence.line]
        closer = document.lines[fence.end - 1].rstrip("\r\n")
        marker = opener[: len(opener) - len(opener.lstrip(opener[:1]))]
        if (
            not fence.closed
            or marker[:1] not in ("`", "~")
            or closer.rstrip(" \t") != marker
            or not _FENCE_LANGUAGE.fullmatch(fence.info.strip())
        ):
            continue
        end = document.offsets[fence.end - 1] + len(closer)
        yield fence.info.strip(), fence.code.removesuffix("\n"), (document.offsets[fence.line], end)


def replace_code(content: dict[str, Any], block: BrokenCode, code: str | None, note: str) -> None:
    """Put `code` in place of a broken block, or (None) the `note` saying it was left out."""
    value = content[block.part.id]
    if block.span is None:
        value["code"] = code if code is not None else ""
        if code is None:
            value["dropped"] = note
        return
    start, end = block.span
    fence = code_fence(code or "")
    middle = (
        f"{fence}{block.language}\n{code}\n{fence}" if code is not None else f"> **Note:** {note}"
    )
    content[block.part.id] = value[:start] + middle + value[end:]


# Languages whose comments start with `#`, so a kept prefix can say where it stops.
HASH_COMMENTS = frozenset({"python", "yaml", "toml"})
# A kept prefix must hold at least this many statement lines (not blank, not
# comments), and at least this share of the block's: less is not the example.
_MIN_KEPT_LINES = 3
_MIN_KEPT_SHARE = 1 / 3
CUT_MARK = "# (cut off here: the rest of this example did not parse)"


def stopped_at(length: int, bound: int) -> bool:
    """Whether code of `length` characters reached its `bound`, where a grammar stops it.

    Within a hundredth of it (2 at least): the grammar and Python count some
    characters differently, and Qwen2.5-Coder-1.5B's python stopped at 479 of
    480 on `            r` (2026-12-03). Prose has its own, wider slack.
    """
    return length >= bound - max(2, bound // 100)


def without_last_line(language: str, code: str) -> str:
    """Code a bound stopped that still parses, without its last line.

    Stopped at its bound, python can end on a piece of a name that parses as
    one (`    is_act`, Qwen2.5-Coder-1.5B's class of settings, 2026-12-03).
    What is left may not parse (`def f():` without its body): then the code
    repair gets it, cut where its last whole line ended. Code that does not
    parse, of one line, or in a language we do not parse is left as it is.
    """
    if not parsed(language) or "\n" not in code.strip("\n") or unfence(code) != code:
        return code
    if code_error(language, code) is not None:
        return code
    return code.rstrip("\n")[: code.rstrip("\n").rfind("\n")].rstrip()


def first_line(code: str) -> str:
    """The first line of `code` that is not blank, stripped: where a block starts."""
    return next((line.strip() for line in code.split("\n") if line.strip()), "")


def parsing_prefix(language: str, code: str, start: str) -> str | None:
    """The longest run of `code`'s whole first lines that parses, marked where it stops.

    For a block a model stopped mid-statement whose repair failed too (seen on
    Qwen2.5-Coder-1.5B: `Field(d`, `self.job_id =`, a repair that wrote only
    the missing tail). None when `code` does not start with the line `start`
    (a fragment, not the example), the language has no `#` comments, or what
    parses is too little of the block to stand for it.
    """
    kind = LANGUAGES.get(language.lower(), "")
    lines = code.strip("\n").split("\n")
    if kind not in HASH_COMMENTS or first_line(code) != start.strip():
        return None

    def statements(chunk: list[str]) -> int:
        return sum(1 for line in chunk if line.strip() and not line.lstrip().startswith("#"))

    need = max(_MIN_KEPT_LINES, math.ceil(statements(lines) * _MIN_KEPT_SHARE))
    for end in range(len(lines) - 1, 0, -1):
        head = lines[:end]
        if statements(head) < need:
            return None
        text = "\n".join(head).rstrip()
        if code_error(kind, text) is None:
            # Indented as the kept lines: a method given alone parses dedented.
            indent = min((x[: len(x) - len(x.lstrip())] for x in head if x.strip()), key=len)
            return f"{text}\n{indent}{CUT_MARK}"
    return None
