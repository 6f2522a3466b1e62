"""Code a model broke mechanically, mended by code: no call, and only where that parses.

Small models under a JSON grammar make the same few slips in code: the line
breaks left out (their indentation kept), a bare file path as the first
line, markdown fences inside a block, a repetition loop that runs until the
bound stops it. `agent.draft.repair` runs these before it considers a repair
call. Pure code; imports `agent.core` and the document modules only.
"""

from __future__ import annotations

import re
from typing import Any

from agent.core.templates import Part, Section
from agent.document.assemble import unfence
from agent.document.blocks import HASH_COMMENTS, parsed
from agent.document.echoes import loop_in
from agent.document.lints import code_error
from agent.document.lints.code import LANGUAGES
from agent.document.slips import mend_slips

# A repetition loop: the same run of lines (up to this many) three times in a
# row, holding at least this many characters; real code does not do that.
_LOOP_PERIOD = 12
_LOOP_MIN_CHARS = 12
LOOP_MARK = "# (cut off here: the model repeated itself from this point)"
# Languages where the mark above is a comment (or, in a tree, plain text).
_HASH_MARKED = frozenset({"python", "yaml", "toml", "bash", "sh", "shell", "text", "dockerfile"})
# Parts whose fences and `#` lines are content (headings), not slips or comments.
MARKDOWN = frozenset({"markdown", "md"})


def loop_start(code: str) -> int | None:
    """The line where `code` starts repeating itself, or None.

    Qwen2.5-Coder-1.5B can fall into a loop (the same six `from
    fastapi.openapi.models import ...` lines, 70 lines' worth) that runs
    until the bound stops it. The first copy stays; the line after it is
    where the loop starts.
    """
    lines = code.split("\n")
    for i in range(len(lines)):
        for period in range(1, _LOOP_PERIOD + 1):
            if i + 3 * period > len(lines):
                break
            run = lines[i : i + period]
            if sum(len(line.strip()) for line in run) < _LOOP_MIN_CHARS:
                continue
            if run == lines[i + period : i + 2 * period] == lines[i + 2 * period : i + 3 * period]:
                return i + period
    return None


# A line that is only a fence marker, with or without a language.
_FENCE_LINE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})[\w+-]*[ \t]*(?:\n|$)", re.MULTILINE)


def tidy_code(section: Section, content: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Code parts without fence lines inside, and with a repetition loop cut back.

    Asked for a bash block, Qwen2.5-Coder-1.5B has written markdown: `####`
    headings, each over its own ```bash block, in one string. Inside our
    fence those lines would show as text and close nothing; without them the
    headings read as comments (bash, python, yaml, toml). Not in a markdown
    part, where a fence is content. A loop (`loop_start`) is cut back to its
    first copy, marked where it stops.

    Before the cut and parse checks, so that what is left is judged as any
    other block: it parses, or it is repaired, trimmed or left out.
    """
    notes: list[str] = []
    for part in section.parts:
        value = content.get(part.id)
        if part.kind != "code" or not isinstance(value, dict):
            continue
        code = unfence(str(value.get("code", "")))
        if part.language.lower() not in MARKDOWN:
            code = _FENCE_LINE.sub("", code)
        start = loop_start(code)
        if start is not None:
            head = "\n".join(code.split("\n")[:start]).rstrip()
            mark = LOOP_MARK if part.language.lower() in _HASH_MARKED else ""
            code = f"{head}\n{mark}" if mark else head
            notes.append(
                f"{part.id}: the model repeated its {part.language} code from line {start + 1} "
                "on; kept the lines before"
            )
        value["code"] = code
    return content, notes


# A run of four or more spaces between two non-space characters: where a small
# model writing code into a JSON string dropped a "\n" and kept the next
# line's indentation (`def f(x):    # Claim    row = claim(x)`).
_LOST_BREAK = re.compile(r"(?<=\S)( {4,})(?=\S)")
# A block's first line that only names its file (`relay/service.py`,
# `File: config.py`): models write it where a comment belongs.
_PATH_LINE = re.compile(
    r"(?:File:\s*)?`?[\w.-]*(?:/[\w.-]+)*\.(?:pyi?|tsx?|jsx?|ya?ml|toml|json|cfg|ini|env|txt|sh)`?"
)
# Where indentation carries meaning, so a run of spaces stands for a lost break.
_BREAKS_KEEP_INDENT = frozenset({"python", "toml"})


def restore_breaks(language: str, code: str) -> str:
    """`code` with a line break put back before each run of four or more spaces in a line.

    Python and toml only (where indentation is what such a run meant); other
    code as it is. Whether the result parses is the caller's question.
    """
    if LANGUAGES.get(language.lower(), "") not in _BREAKS_KEEP_INDENT:
        return code
    return "\n".join(_LOST_BREAK.sub(r"\n\1", line) for line in code.split("\n"))


def restore_code(language: str, code: str) -> str | None:
    """`code` with the model's mechanical slips undone, if that makes it parse.

    Seen on Qwen2.5-Coder-1.5B under the JSON grammar: whole functions on one
    line, each lost line break still followed by its indentation, and a bare
    file path as the first line. Line breaks go back before each run of four
    or more spaces inside a line (python, toml: where indentation is what the
    run meant), and a path line becomes a comment; in python, slips in the
    middle of the block are mended after (`agent.document.slips`). The
    result counts only when it parses (a run of spaces in a string literal
    then breaks the string, so it does not). None when no slip is there,
    or undoing it does not make the block parse (that is the repair call's),
    or the block parses already.
    """
    kind = LANGUAGES.get(language.lower(), "")
    if kind not in HASH_COMMENTS or code_error(kind, code) is None:
        return None
    lines = code.strip("\n").split("\n")
    candidates = ["\n".join(lines)]
    if _PATH_LINE.fullmatch(lines[0].strip()):
        lines = [f"# {lines[0].replace('`', '').strip()}", *lines[1:]]
        candidates.append("\n".join(lines))
    if (broken_up := restore_breaks(kind, "\n".join(lines))) != candidates[-1]:
        candidates.append(broken_up)
    # The most undone first; python's slips mid-block after (`mend_slips`).
    for candidate in reversed(candidates):
        if code_error(kind, candidate) is None:
            return candidate
        if kind == "python" and (mended := mend_slips(candidate)) is not None:
            return mended
    return None


def only_comments(code: str) -> bool:
    """Whether every line of `code` is blank or a `#` comment."""
    lines = [line.strip() for line in unfence(code).split("\n")]
    return not any(line and not line.startswith("#") for line in lines)


def says_something(code: str) -> bool:
    """Whether `code`'s comments say something: two or more different ones of three
    or more words ("# HF_TOKEN: the Hugging Face access token"), not `# purpose`
    line after line."""
    said = {
        " ".join(line.strip().lstrip("#").split()).lower()
        for line in unfence(code).split("\n")
        if line.strip().startswith("#")
    }
    return sum(1 for comment in said if len(comment.split()) >= 3) >= 2


def drop_comment_only(part: Part, content: dict[str, Any]) -> str:
    """Leave a comments-only code part out, with the note the document shows; the run's note."""
    value = content[part.id]
    value["code"] = ""
    value["dropped"] = (
        f"The model's {part.language} for {part.title} held no code, comments or imports at "
        "most, and was left out."
    )
    return (
        f"{part.id}: the {part.language} block held no code, comments or imports at most; left out"
    )


def cut_line_loops(section: Section, content: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Code in a language we do not parse, with a line that repeats itself, cut there.

    `pip install --trusted-host pypi.python.org --trusted-host pypi.python.org
    ...` (25 times, Qwen2.5-Coder-1.5B, 2026-12-03): a loop inside one line,
    which `loop_start` (whole lines) does not see. The line keeps its first
    copy, the mark follows. Code we parse is left to the repair, whose request
    holds it as the model wrote it.
    """
    notes: list[str] = []
    for part in section.parts:
        value = content.get(part.id)
        language = part.language.lower()
        if part.kind != "code" or not isinstance(value, dict) or parsed(language):
            continue
        if language not in _HASH_MARKED:
            continue
        lines = str(value.get("code", "")).split("\n")
        for i, line in enumerate(lines):
            # Five or more copies in one line (prose is held to three: `looped`).
            match = loop_in(line, 5)
            if match and not any(_holds_code(x) for x in lines[:i]):
                # Its first line of code is the loop: nothing of it stands for the block.
                value["code"] = ""
                value["dropped"] = (
                    f"The model's {part.language} for {part.title} repeated one line over "
                    "and over and held nothing else, and was left out."
                )
                notes.append(f"{part.id}: its first line of code repeated itself; left out")
                break
            if match:
                lines[i + 1 :] = [LOOP_MARK]
                lines[i] = line[: match.start() + len(match.group(1))].rstrip()
                value["code"] = "\n".join(lines)
                notes.append(f"{part.id}: the model repeated itself inside line {i + 1}; cut there")
                break
    return content, notes


def _holds_code(line: str) -> bool:
    """A line that is not blank, a comment or a shebang."""
    return bool(line.strip()) and not line.lstrip().startswith("#")


# Lines of a directory tree as models draw it.
_TREE_LINE = re.compile(r"^\s*(?:[│|]\s*)*(?:├──|└──|\|--|`--)")


def holds_tree(language: str, code: str) -> bool:
    """Whether a block we parse holds a directory tree instead (two or more tree lines).

    Asked for key classes, Qwen2.5-Coder-1.5B has drawn the package tree in
    the python block; its repair drew the tree again. A repair call cannot
    turn a tree into the classes, so the block is left out without one.
    """
    if LANGUAGES.get(language.lower(), "") not in ("python", "json", "yaml", "toml"):
        return False
    return sum(1 for line in code.split("\n") if _TREE_LINE.match(line)) >= 2
