"""Code in a validated section: code that does not parse, and code parts with no code.

A block that does not parse gets one repair call (`repair_code`), then is
kept up to where it parses or dropped with a note; a code part with no code
of its own (comments or imports only, a repeat of an earlier block) gets one
call for the code it should show (`write_hollow`).
Imports core, document, providers and the draft stage's prompts and calls;
never section drafting, a later stage or a front end.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from agent.core.records import CallRecord, Event, Progress, quiet
from agent.core.templates import Part, Section, Template, section_heading
from agent.document.assemble import unfence
from agent.document.blocks import (
    CUT_MARK,
    BrokenCode,
    broken_code,
    first_line,
    parsing_prefix,
    replace_code,
    stopped_at,
    without_last_line,
)
from agent.document.hollow import (
    Hollow,
    hollow_parts,
    import_statements,
    under_imports,
    what_is_hollow,
)
from agent.document.lints import code_error
from agent.document.mend import (
    LOOP_MARK,
    drop_comment_only,
    holds_tree,
    restore_breaks,
    restore_code,
    says_something,
)
from agent.draft.calls import MarkdownReply, structured_call
from agent.draft.code_reply import (
    CODE_LINE_CHARS,
    code_reply_grammar,
    code_reply_lines,
    read_code_reply,
    rejoined,
)
from agent.draft.prompting import PromptFile, fill, lines_for, load_prompt
from agent.providers.base import Message, Provider, fitted_schema, schema_budget

REPAIR_PROMPT_ID = "repair_code"
WRITE_PROMPT_ID = "write_code"


@functools.lru_cache(maxsize=64)
def repair_model(max_chars: int) -> type[BaseModel]:
    """The reply a code repair call must return: the block, at most `max_chars`."""
    return create_model(
        "RepairedCode",
        __config__=ConfigDict(extra="forbid"),
        code=(str, Field(description="the corrected code only", max_length=max_chars)),
    )


@dataclass(frozen=True)
class CodeAsks:
    """What every code call of one section shares: the provider, the section and its
    template, its system message (the prefix every call reuses), the reply limit,
    progress, and whether code comes back as one fenced block (`markdown`: the
    section was drafted as markdown) or as a JSON string."""

    provider: Provider
    template: Template
    section: Section
    system: Message
    max_tokens: int
    on_event: Progress = quiet
    markdown: bool = False

    @property
    def heading(self) -> str:
        return section_heading(self.template, self.section)


async def _code_call(
    asks: CodeAsks, prompt: PromptFile, part: Part, language: str, max_chars: int, **values: str
) -> tuple[str, str, list[CallRecord]]:
    """One call asking for a block of `language` again: the code it gave (unfenced,
    mechanical slips undone; "" for none), why there is none, and the calls.

    The prompt gets `values`, the language, the part's title, the section's
    heading, the block's size as `lines`, and how to reply (`replies`): a JSON
    string of at most `limit` characters, or, `markdown`, one fenced block held
    to lines by a grammar, so nothing in it is JSON-escaped.
    """
    provider, max_tokens = asks.provider, asks.max_tokens
    reading: MarkdownReply | None = None
    if asks.markdown:
        lines, held = code_reply_lines(max_chars, schema_budget(provider, max_tokens))
        model = repair_model(held * (CODE_LINE_CHARS + 1))
        reading = MarkdownReply(
            grammar=code_reply_grammar(language, held),
            read=lambda text: {"code": read_code_reply(text)},
        )
        reply = fill(prompt.replies["markdown"], language=language)
    else:
        model = repair_model(max_chars)
        fitted = fitted_schema(provider, model.model_json_schema(), max_tokens)
        held = int(fitted["properties"]["code"]["maxLength"])
        lines = lines_for(held)
        reply = fill(prompt.replies["json"], limit=str(held))
    ask = Message(
        role="user",
        content=fill(
            prompt.user,
            language=language,
            part_title=part.title,
            section_heading=asks.heading,
            lines=str(lines),
            reply=reply,
            **values,
        ),
    )
    parsed, calls, why = await structured_call(
        provider,
        prompt,
        model,
        [asks.system, ask],
        label=f"{asks.section.id}.{part.id}",
        schema_name="repaired_code",
        max_tokens=max_tokens,
        json_schema=model.model_json_schema(),
        on_event=asks.on_event,
        markdown=reading,
    )
    raw = str(getattr(parsed, "code", "")) if parsed else ""
    # Lines as the grammar counted them, for the bound; then as the model wrote them.
    code = rejoined(raw) if asks.markdown else unfence(raw).strip("\n")
    # A reply can make the same slips as the draft (one line, a path line).
    code = restore_code(language, code) or code
    # Stopped at its bound (lines, or characters), maybe on a piece of a name, which parses.
    if (raw.count("\n") + 1 >= held) if asks.markdown else stopped_at(len(raw), held):
        code = without_last_line(language, code)
    return code, why or "no code", calls


# The marks tidsmith puts where it cut a block: shown to the model, they were
# copied into its reply (Qwen2.5-Coder-1.5B, 2026-12-03).
_MARKS = frozenset({CUT_MARK, LOOP_MARK})


def _unmarked(code: str) -> str:
    """`code` without the lines tidsmith added to mark where it was cut."""
    return "\n".join(line for line in code.split("\n") if line.strip() not in _MARKS)


async def _repair_block(
    asks: CodeAsks, prompt: PromptFile, block: BrokenCode
) -> tuple[str, str | None, list[CallRecord]]:
    """One repair call for one block: the code it gave, what is still wrong (None: it
    parses), and the calls."""
    part = block.part
    asks.on_event(
        Event(kind="retry", section=asks.section.id, detail=f"{part.id}: {block.error}; repairing")
    )
    # Twice the part's bound: a block cut at its bound, asked to be whole in the
    # same room, was cut again (Qwen2.5-Coder-1.5B: 6 of 8 repairs dropped).
    # The fit still holds the reply within max_tokens.
    fixed, why, calls = await _code_call(
        asks,
        prompt,
        part,
        block.language,
        2 * part.max_chars,
        error=block.error,
        code=_unmarked(block.code).strip("\n"),
        first_line=first_line(block.code),
    )
    still = code_error(block.language, fixed) if fixed.strip() else why
    if still is None and not _stands_for(block.code, fixed):
        still = "it wrote only a part of the block"
    return fixed, still, calls


async def write_hollow(
    asks: CodeAsks, content: dict[str, Any], only: set[str] | None = None
) -> tuple[dict[str, Any], list[str], list[CallRecord]]:
    """Code parts with no code of their own get one call for the code they should show.

    Comments only, imports only, or a repeat of an earlier block of the
    section (`hollow_parts`): all parse, so the code repair never sees them.
    The reply is checked the same way; hollow again, the part is left out
    with a note in its place, except comments that say something
    (`says_something`: a list of settings, say), which stay as written. Code
    that does not parse goes on to `repair_code`. `only`: those parts alone.
    """
    notes: list[str] = []
    calls: list[CallRecord] = []
    section = asks.section
    hollow = [h for h in hollow_parts(section, content) if only is None or h.part.id in only]
    content = copy.deepcopy(content) if hollow else content
    prompt = load_prompt(WRITE_PROMPT_ID)
    for found in hollow:
        part = found.part
        shown = _unmarked(unfence(str(content[part.id].get("code", "")))).strip("\n") or "(empty)"
        what = _FOUND[found.found]
        asks.on_event(Event(kind="retry", section=section.id, detail=f"{part.id}: {what}"))
        code, _, more = await _code_call(
            asks,
            prompt,
            part,
            part.language,
            part.max_chars,
            found=fill(
                prompt.cases[found.found],
                language=part.language,
                code=shown,
                earlier=found.earlier.title if found.earlier else "",
            ),
            guidance=" ".join(part.guidance.split()),
        )
        calls += more
        notes.append(_settle_hollow(section, content, found, code, shown))
    return content, notes, calls


def _settle_hollow(
    section: Section, content: dict[str, Any], found: Hollow, code: str, shown: str
) -> str:
    """Put the written code in place, keep comments that say something, or leave the
    part out; the run's note."""
    part = found.part
    index = section.parts.index(part)
    before = [
        (p, str(content[p.id].get("code", "")))
        for p in section.parts[:index]
        if p.kind == "code" and isinstance(content.get(p.id), dict)
    ]
    again = what_is_hollow(part.language, code, before)
    if again is None:
        if found.found == "imports":  # asked for the code after them, not shown
            code = under_imports(import_statements(shown), code)
        content[part.id]["code"] = code
        return f"{part.id}: the {part.language} block {_FOUND[found.found]}; written"
    if found.found == "comments" and again[0] == "comments" and says_something(shown):
        return f"{part.id}: only comments, and so was the call's reply; kept as written"
    return _leave_out(part, content, found) + ", after one call"


# What a hollow part was found to hold, as the run's notes say it.
_FOUND = {
    "comments": "held only comments",
    "imports": "held only import lines",
    "repeat": "repeated an earlier block",
}


def _leave_out(part: Part, content: dict[str, Any], found: Hollow) -> str:
    """Leave a hollow part out, with the note the document shows; the run's note."""
    if found.found == "comments":
        return drop_comment_only(part, content)
    value = content[part.id]
    value["code"] = ""
    if found.found == "repeat" and found.earlier is not None:
        value["dropped"] = (
            f"The model's {part.language} for {part.title} repeated the code of "
            f"{found.earlier.title}, and was left out."
        )
        return f"{part.id}: repeated {found.earlier.id}; left out"
    value["dropped"] = (
        f"The model's {part.language} for {part.title} held only import lines, and was left out."
    )
    return f"{part.id}: the {part.language} block held only import lines; left out"


def _stands_for(original: str, fixed: str) -> bool:
    """Whether a repair is the block, not a piece of it.

    Asked to fix a block cut mid-statement, a small model often writes only
    the missing tail (`'event_type': event_type, ...}`) or one line of it,
    which may parse alone. A repair starts where the block started, or is at
    least half its length.
    """
    return first_line(fixed) == first_line(original) or len(fixed) * 2 >= len(original)


async def repair_code(
    asks: CodeAsks, content: dict[str, Any]
) -> tuple[dict[str, Any], list[str], list[CallRecord]]:
    """Code that does not parse gets one repair call per block; still broken, it is dropped.

    A block whose only faults are mechanical (line breaks lost, a file path as
    its first line, a slip mid-block: `restore_code`) is mended without a call, and a directory
    tree where code belongs is left out without one (`holds_tree`).

    Code parts, and fenced python/json/yaml/toml blocks inside text parts. The
    repair request starts with the section's system message, so the shared
    prefix is reused. Still broken, a block keeps its longest start that
    parses, marked where it stops, when that stands for it (`_kept_prefix`);
    otherwise it is dropped. A dropped code part keeps its intro, loses its
    code, and carries a `dropped` note the document shows in its place; a
    dropped block in text becomes that note.
    """
    broken = broken_code(asks.section, content)
    if not broken:
        return content, [], []
    prompt = load_prompt(REPAIR_PROMPT_ID)
    notes: list[str] = []
    calls: list[CallRecord] = []
    content = copy.deepcopy(content)
    for block in broken:
        mended = _mend_without_call(content, block)
        if mended is not None:
            notes.append(mended)
            continue
        fixed, still, more = await _repair_block(asks, prompt, block)
        calls += more
        notes.append(_settle(content, block, fixed, still))
    return content, notes, calls


def _mend_without_call(content: dict[str, Any], block: BrokenCode) -> str | None:
    """A tree where code belongs left out, or mechanical slips undone; the note, or None."""
    part, language = block.part, block.language
    if holds_tree(language, block.code):
        note = (
            f"The {language} example for {part.title} was left out: the model drew a "
            f"directory tree there instead of {language}."
        )
        replace_code(content, block, None, note)
        return f"{part.id}: a directory tree, not {language}; dropped"
    restored = restore_code(language, block.code)
    if restored is None:
        return None
    replace_code(content, block, restored, "")
    return (
        f"{part.id}: the {language} code did not parse ({block.error}); "
        "mended, no call (lost line breaks, a file-path line, or a slip mid-block)"
    )


def _settle(content: dict[str, Any], block: BrokenCode, fixed: str, still: str | None) -> str:
    """Put the repair, the start that parses, or the left-out note in place; say which."""
    part = block.part
    if still is None:
        replace_code(content, block, fixed, "")
        return f"{part.id}: the {block.language} code did not parse ({block.error}); repaired"
    kept = _kept_prefix(block, fixed)
    if kept is not None:
        replace_code(content, block, kept, "")
        return (
            f"{part.id}: the {block.language} code did not parse after a repair; kept its "
            f"first {kept.count(chr(10))} lines, which parse, marked where they stop"
        )
    replace_code(
        content,
        block,
        None,
        f"The {block.language} example for {part.title} was left out: the model's code "
        f"did not parse ({block.error}), nor did its repair ({still}).",
    )
    return f"{part.id}: the {block.language} code did not parse after a repair; dropped"


def _kept_prefix(block: BrokenCode, fixed: str) -> str | None:
    """The longer parsing prefix of the repair or the original, if either stands for the block.

    Small models answer a repair with the missing tail or a shorter stub as
    often as with the whole block; the block's own first line tells the two
    apart (`parsing_prefix`). No extra call: what was written is all there is.
    A prefix of imports or comments alone stands for nothing in a text part's
    fence: the Spec's Core Entities, recorded 2026-12-03, kept 36 import
    lines (the same 17 twice) of a block whose code came after them. A code
    part keeps it, for `settle_code` to ask for the code after the imports.
    """
    tries = [(code, first_line(block.code)) for code in (fixed, block.code)]
    # Written on one line (lost line breaks) and cut at its end, as the repair
    # wrote it again: its start, with the breaks put back.
    first = first_line(restore_breaks(block.language, block.code))
    tries += [(restore_breaks(block.language, code), first) for code in (fixed, block.code)]
    # Without lost breaks a try is its own restored copy: each parsed once.
    found = [
        kept
        for code, start in dict.fromkeys(tries)
        if (kept := parsing_prefix(block.language, code, start)) is not None
        and (block.span is None or what_is_hollow(block.language, kept, []) is None)
    ]
    return max(found, key=len) if found else None


async def settle_code(
    asks: CodeAsks, content: dict[str, Any]
) -> tuple[dict[str, Any], list[str], list[CallRecord]]:
    """Code parts with no code of their own written (`write_hollow`), then code that
    does not parse repaired or dropped (`repair_code`): the content, notes and calls.

    Twice, when the first round leaves a part with no code of its own that had
    some before it: a failed repair whose start that parses is the imports
    alone (`_kept_prefix`; three parts of the 2026-12-03 recordings). The
    second round asks only for those parts' code, and repairs what it writes.
    """

    async def settle(
        content: dict[str, Any], only: set[str] | None
    ) -> tuple[dict[str, Any], list[str], list[CallRecord]]:
        content, written, calls = await write_hollow(asks, content, only)
        content, repaired, more = await repair_code(asks, content)
        return content, [*written, *repaired], [*calls, *more]

    section = asks.section
    asked = {h.part.id for h in hollow_parts(section, content)}
    content, notes, calls = await settle(content, None)
    again = {h.part.id for h in hollow_parts(section, content)} - asked
    if again:
        content, more_notes, more_calls = await settle(content, again)
        notes += more_notes
        calls += more_calls
    # Imports alone still (asked for once already): nothing the part asks for.
    for found in hollow_parts(section, content):
        if found.found == "imports":
            content = copy.deepcopy(content)
            notes.append(_leave_out(found.part, content, found))
    return content, notes, calls
