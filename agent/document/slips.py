"""Python broken by a slip mid-block, mended where the parser stops: no call.

Recorded repair requests (Qwen2.5-Coder-1.5B, 2026-12-03) show slips a repair
call did not fix, because the model wrote the same block back: a `def` whose
body is only a comment (`# Implementation of claim method`), a statement
ending in a stray colon (`key = f'relay:rl:{endpoint_id}':`), a header with
its colon left off, and a string holding its own quote character
(`'UPDATE deliveries SET status = 'delivering' ...'`). Each is mended at the
line the parser names, one at a time, while each mend moves the error further
on; the result counts only when the whole block parses.

What is never mended here is a block cut off at its end (its last line is
where it stops): that is the repair call's, which can finish it. Pure code.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

# More than any block a section holds needs; each mend must move the error on.
_MAX_MENDS = 16
# Lines that open a block and end in a colon.
_HEADER = re.compile(
    r"^\s*(?:async\s+)?(?:def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
)
_NO_BODY = re.compile(r"expected an indented block after .* on line (\d+)")
# What may come before a string literal, and after it.
_BEFORE_STRING = frozenset("([{,=:")
_AFTER_STRING = frozenset(")]},:")
_STRING_PREFIX = re.compile(r"(?<![\w.])[rbfuRBFU]{1,2}$")
# Enough quote pairs for any line a section holds; bounds the parses one mend tries.
_MAX_QUOTES = 24


@dataclass(frozen=True)
class _Error:
    line: int  # 1-based, as the parser counts
    offset: int  # characters into the block: how far parsing got
    msg: str


def _error(lines: list[str]) -> _Error | None:
    """Where `lines` stop parsing as python (dedented, as the code lint reads them)."""
    try:
        ast.parse(textwrap.dedent("\n".join(lines)))
    except SyntaxError as e:
        line = min(max(e.lineno or 1, 1), len(lines) + 1)
        return _Error(line, sum(len(x) + 1 for x in lines[: line - 1]) + (e.offset or 0), e.msg)
    except ValueError:  # a null byte: nothing to mend
        return _Error(1, 0, "source holds a null byte")
    return None


def _last(lines: list[str], i: int) -> bool:
    """Whether line `i` is the block's last line with anything on it: where a cut stops."""
    return not any(line.strip() for line in lines[i + 1 :])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _body(lines: list[str], err: _Error) -> list[list[str]]:
    """A header whose body is missing or only comments gets `...` under them."""
    found = _NO_BODY.match(err.msg)
    if not found:
        return []
    head = int(found.group(1)) - 1
    if not 0 <= head < len(lines):
        return []
    end = head + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].lstrip().startswith("#")):
        end += 1
    comments = [i for i in range(head + 1, end) if lines[i].strip()]
    # A header with nothing after it is where a cut block stopped.
    if not comments and _last(lines, head):
        return []
    at = comments[-1] + 1 if comments else head + 1
    base = _indent(lines[head])
    depth = _indent(lines[comments[-1]]) if comments else 0
    pad = " " * (depth if depth > base else base + 4)
    return [[*lines[:at], f"{pad}...", *lines[at:]]]


def _stray_colon(lines: list[str], err: _Error) -> list[list[str]]:
    """A statement that is not a header, ending in a colon, loses it."""
    i = err.line - 1
    if err.msg != "invalid syntax" or i >= len(lines) or _last(lines, i):
        return []
    line = lines[i].rstrip()
    if not line.endswith(":") or _HEADER.match(line):
        return []
    return [[*lines[:i], line[:-1].rstrip(), *lines[i + 1 :]]]


def _missing_colon(lines: list[str], err: _Error) -> list[list[str]]:
    """A header with its colon left off gets it (not on the last line: a cut)."""
    i = err.line - 1
    if err.msg != "expected ':'" or i >= len(lines) or _last(lines, i):
        return []
    line = lines[i].rstrip()
    if not _HEADER.match(line) or line.endswith(":"):
        return []
    return [[*lines[:i], f"{line}:", *lines[i + 1 :]]]


def _requote(lines: list[str], err: _Error) -> list[list[str]]:
    """A string holding its own quote character, quoted with the other one instead.

    Every pair of quotes on the error line that could open and close one
    string around others of its kind is a candidate; the caller keeps the one
    that parses furthest.
    """
    i = err.line - 1
    if i >= len(lines) or _last(lines, i):
        return []
    line = lines[i]
    found: list[list[str]] = []
    for quote, other in (("'", '"'), ('"', "'")):
        spots = [k for k, c in enumerate(line) if c == quote][:_MAX_QUOTES]
        if len(spots) < 4 or other in line:
            continue
        for a in spots:
            before = _STRING_PREFIX.sub("", line[:a].rstrip()).rstrip()
            if before and before[-1] not in _BEFORE_STRING:
                continue
            for b in spots:
                after = line[b + 1 :].lstrip()
                inner = line[a + 1 : b]
                if b <= a or quote not in inner or (after and after[0] not in _AFTER_STRING):
                    continue
                fixed = f"{line[:a]}{other}{inner}{other}{line[b + 1 :]}"
                found.append([*lines[:i], fixed, *lines[i + 1 :]])
    return found


_MENDS: tuple[Callable[[list[str], _Error], list[list[str]]], ...] = (
    _body,
    _stray_colon,
    _missing_colon,
    _requote,
)


def mend_slips(code: str) -> str | None:
    """`code` with its slips mended, if that makes it parse; None otherwise.

    None too when it parses already, or when what stops it is no slip above
    (a cut end, a lost bracket): a mend is kept only when it moves the error
    further into the block, and the whole block must parse in the end.
    """
    lines = code.strip("\n").split("\n")
    err = _error(lines)
    for _ in range(_MAX_MENDS):
        if err is None:
            return None
        tried = [(_error(c), c) for mend in _MENDS for c in mend(lines, err)]
        done = next((c for e, c in tried if e is None), None)
        if done is not None:
            return "\n".join(done)
        onward = [(e, c) for e, c in tried if e is not None and e.offset > err.offset]
        if not onward:
            return None
        err, lines = max(onward, key=lambda pair: pair[0].offset)
    return None
