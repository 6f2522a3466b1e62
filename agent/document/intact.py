"""Whole replies: text a length bound stopped mid-sentence, or the model left unfinished.

Small models under a grammar fill a string up to its (fitted) bound, and the
grammar then ends the string wherever the model is: "optimized for high
throughput and low l". This module finds such strings in a validated section
(and reads and writes them by path, for the call that asks for them again),
trims what is still cut after that call back to its last complete sentence,
and finds prose the model ended mid-sentence itself. Code that does not
parse is `agent.document.blocks`'. Pure code: the calls are
`agent.draft.repair`'s. Imports `agent.core`, the document modules and
`agent.providers.fitting`; never a stage.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from agent.core.templates import Section
from agent.document.assemble import unfence
from agent.document.blocks import parsed, stopped_at, without_last_line
from agent.document.lints import code_error
from agent.providers.fitting import resolve_ref

# Where prose may end: a sentence mark, possibly inside closing quotes, brackets or emphasis.
_CLOSERS = "\"')\\]*_`\u201d\u2019"
_SENTENCE_END = re.compile(f"[.!?\u2026][{_CLOSERS}]*\\s*$")
_SENTENCE_BREAK = re.compile(f"[.!?\u2026][{_CLOSERS}]*(?=\\s|$)")
# Values that are names rather than prose: a cut there is no sentence to finish.
_NOT_PROSE = {"tdd_refs", "note_refs"}


@dataclass(frozen=True)
class Cut:
    """A string of a reply that reached its bound without ending, or ended mid-sentence."""

    path: tuple[str | int, ...]
    bound: int
    kind: str  # "prose", "cell" (a table cell), "item" (a list item), "code"
    language: str = ""
    # False: the model ended it mid-sentence itself, far from its bound.
    at_bound: bool = True

    @property
    def why(self) -> str:
        return (
            f"cut off at its limit of {self.bound} characters"
            if self.at_bound
            else "ended mid-sentence"
        )

    @property
    def name(self) -> str:
        """The field as the re-ask names it: `coding_patterns item 2`, `x.code`."""
        out = str(self.path[0])
        for key in self.path[1:]:
            out += f" item {key + 1}" if isinstance(key, int) else f".{key}"
        return out


def bounded_strings(
    data: Any, schema: dict[str, Any]
) -> Iterator[tuple[tuple[str | int, ...], str, int]]:
    """Every string in `data` that its schema bounds: (path, value, bound)."""
    defs = schema.get("$defs", {})

    def walk(
        value: Any, node: dict[str, Any], path: tuple[str | int, ...]
    ) -> Iterator[tuple[tuple[str | int, ...], str, int]]:
        node = resolve_ref(node, defs)
        if isinstance(value, dict) and node.get("type") == "object":
            props = node.get("properties", {})
            for key, sub in value.items():
                if key in props:
                    yield from walk(sub, props[key], (*path, key))
        elif isinstance(value, list) and node.get("type") == "array":
            for i, sub in enumerate(value):
                yield from walk(sub, node.get("items", {}), (*path, i))
        elif isinstance(value, str) and "maxLength" in node:
            yield path, value, int(node["maxLength"])

    yield from walk(data, schema, ())


def _kind(section: Section, path: tuple[str | int, ...]) -> tuple[str, str] | None:
    """What a string at `path` is (kind, language), or None for names that are not prose."""
    part = next((p for p in section.parts if p.id == path[0]), None)
    if part is None or path[0] in _NOT_PROSE:
        return None
    if part.kind == "code":
        field = path[-1]
        if field == "code":
            return "code", part.language
        return ("prose", "") if field == "intro" else None
    # A diagram's or a tree's names and phrases are no sentences either: trimmed like cells.
    if part.kind in ("table", "diagram", "tree"):
        return "cell", ""
    if part.kind == "list":
        return "item", ""
    return "prose", ""


def ends_cleanly(text: str) -> bool:
    """Whether prose ends at the end of a sentence."""
    return bool(_SENTENCE_END.search(text.rstrip()))


def _prose_slack(bound: int) -> int:
    """How far below its bound an unfinished paragraph, item or cell still counts as stopped there.

    The grammar counts what the model writes (an escape such as `\\u2019` is one
    unit there, several characters of ours or the other way round), so a string
    the grammar stopped can read a few characters short of the bound we compute:
    seen on Qwen2.5-Coder, "... with overridable" at 88 of 90, list items
    looping on file names stopped at 129 of 130, and a tree's "data
    repositories for endpoints and deliver" at 43 of 44.
    """
    return max(2, bound // 20)


def find_cuts(section: Section, content: dict[str, Any], schema: dict[str, Any]) -> list[Cut]:
    """The strings of a section reply that reached their bound and stop unfinished.

    Prose is unfinished when it does not end a sentence; code when it does not
    parse (for the languages we can parse) or, otherwise, always: the chance a
    model ends exactly at its bound on its own is small, and a bash or a tree
    stopped mid-line reads as broken.
    """
    cuts: list[Cut] = []
    for path, value, bound in bounded_strings(content, schema):
        kind = _kind(section, path)
        if kind is None:
            continue
        what, language = kind
        if what == "code" and not stopped_at(len(value), bound):
            continue
        if what != "code" and len(value) < bound - _prose_slack(bound):
            continue
        if what == "code":
            # Code that parses at its bound may still end on a piece of a line
            # (`without_last_line`), unless it is one line.
            whole = parsed(language) and code_error(language, unfence(value)) is None
            if whole and without_last_line(language, value) == value:
                continue
        elif ends_cleanly(value):
            continue
        cuts.append(Cut(path=path, bound=bound, kind=what, language=language))
    return cuts


# Words a clause does not end on (a cut cell drops them too: `_whole_clause`).
JOINING_WORDS = ("and", "or", "the", "a", "an", "of", "to", "with", "for", "by", "in")
# Text that stops where a clause goes on: a comma, a semicolon, an open
# bracket, a word broken at a hyphen, or a word that joins ("…, FastAPI's
# retrying, arq),", a repetition loop Qwen2.5-Coder ended itself; "… to handle
# deliveries and dead-"). A list item also on a colon with nothing after it
# ("The build and packaging steps are as follows:"); a paragraph may lead into
# what follows it that way. An item may end on a name, so a letter alone is
# not enough, as it is for a paragraph.
_OPEN_CLAUSE = re.compile(rf"(?:[,;(\[{{]|\w[-\u2013\u2014]|\b(?:{'|'.join(JOINING_WORDS)}))\s*$")
# An item also on a modal, alone or with a verb that needs an object: "The team
# will use" (Qwen2.5-Coder-1.5B, 2026-12-03); "The worker can retry" is whole.
_OPEN_ITEM = re.compile(
    _OPEN_CLAUSE.pattern + r"|:\s*$|\b(?:will|would|should|must|can|could|may|might|shall)"
    r"(?:\s+(?:use|be|have|include|provide|implement|handle|follow|need|support))?\s*$"
)
# A paragraph may end on a reference with no full stop: "See ADR-001".
_REFERENCE = re.compile(r"\b[A-Z]{2,}-\d+\)?$")
# A paragraph that is prose, not a list item, table row, heading, quote or fence.
_NOT_PARAGRAPH = re.compile(r"\s*(?:[-*+>|#]|\d+[.)]\s|```|~~~)")


def _open_span(text: str) -> bool:
    """Text that stops inside a code span or bold: "… data in the`", "… named `@"."""
    return text.count("`") % 2 == 1 or text.count("**") % 2 == 1


# Words a full stop follows without ending a sentence.
_ABBREVIATION = re.compile(r"(?:\b\w\.\w|\betc|\bvs|\bcf|\bapprox)\.$", re.I)


def _trails_off(item: str) -> bool:
    """A list item (or paragraph) that holds a whole sentence, then stops without ending the next.

    "The system logs the error and retries the operation. If the retry fails,
    it" (Qwen2.5-Coder-1.5B, 75 of its 80 characters). An item may end on a
    name; one written in sentences ends with one.
    """
    text = item.rstrip()
    if ends_cleanly(text):
        return False
    breaks = [m for m in _SENTENCE_BREAK.finditer(text) if m.end() < len(text)]
    if not breaks:
        return False
    head = text[: breaks[-1].end()]
    return len(head.split()) >= 4 and not _ABBREVIATION.search(head)


def find_unfinished(section: Section, content: dict[str, Any]) -> list[Cut]:
    """Prose the model ended itself in the middle of a word or clause, far from any bound.

    Its last paragraph ends in a letter or digit, with no sentence mark,
    colon, bracket or quote ("... crucial for the webh接"), or ends open
    (`_OPEN_CLAUSE`: "... the subsequent delivery of,"), or trails off after
    a whole sentence ("... settings. Then, you can call the `enq`": a code
    span closed on a piece of a name); or a list item ends
    open (`_OPEN_ITEM`); or a table cell, a diagram's or a tree's string,
    ends open or trails off the same way ("PostgreSQL or Redis connection
    failed during a", "Retry the request after Redis is back up. If", 3 and 6
    characters short of their bound). Such text is trimmed back
    to its last complete sentence, without a call: asking again costs a whole
    section and the model stopped there of its own accord.
    """
    found: list[Cut] = []
    for part in section.parts:
        value = content.get(part.id)
        if part.kind in ("table", "diagram", "tree"):
            found += [
                Cut(path=path, bound=len(cell), kind="cell", at_bound=False)
                for path, cell in _cells(value, (part.id,))
                if _OPEN_CLAUSE.search(cell) or _trails_off(cell)
            ]
            continue
        if part.kind == "list" and isinstance(value, list):
            found += [
                Cut(path=(part.id, i), bound=len(item), kind="item", at_bound=False)
                for i, item in enumerate(value)
                if isinstance(item, str)
                and (_OPEN_ITEM.search(item) or _trails_off(item) or _open_span(item))
            ]
            continue
        if part.kind == "text":
            path: tuple[str | int, ...] = (part.id,)
        elif part.kind == "code" and isinstance(value, dict):
            path, value = (part.id, "intro"), value.get("intro")
        else:
            continue
        if not isinstance(value, str) or not value.strip():
            continue
        last = re.split(r"\n\s*\n", value.strip())[-1]
        # A paragraph may lead into what follows it on a colon, not trail off there.
        trails = _trails_off(last) and not last.rstrip().endswith(":")
        if (
            _NOT_PARAGRAPH.match(last)
            or _REFERENCE.search(last)
            or not (last[-1].isalnum() or _OPEN_CLAUSE.search(last) or _open_span(last) or trails)
        ):
            continue
        found.append(Cut(path=path, bound=len(value), kind="prose", at_bound=False))
    return found


def _cells(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string in a table's, diagram's or tree's value, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(cast("list[Any]", value)):
            yield from _cells(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in cast("dict[str, Any]", value).items():
            yield from _cells(item, (*path, key))


def _last_sentence(text: str) -> str | None:
    ends = list(_SENTENCE_BREAK.finditer(text))
    if not ends:
        return None
    return text[: ends[-1].end()].rstrip()


def trim(cut: Cut, value: str) -> str | None:
    """`value` cut back to where it last ended cleanly, or None when nothing would be left.

    Prose goes back to its last complete sentence; a table cell too when it
    holds one ("Redis is down on publish. The system"), else to its last whole
    word outside any code span or bracket it opened; code in a language we
    cannot parse to its last whole line. Code we can parse loses its last line
    when it parses (a piece of a name parses), else is left as it is: the code
    repair handles it.
    """
    if cut.kind == "code":
        if parsed(cut.language):
            return without_last_line(cut.language, value)
        head = value[: value.rfind("\n")].rstrip() if "\n" in value else ""
        return head or None
    if cut.kind == "cell":
        sentence = _last_sentence(value)
        if sentence and len(sentence.split()) >= 3:  # not "e.g." alone
            return sentence
        # At its bound the last word may be a piece of one; a cell the model
        # ended open ("failed during a") ends on whole words.
        head = value if not cut.at_bound else value[: value.rfind(" ")] if " " in value else ""
        # "Enqueue latency (`POST": a span or bracket left open garbles the row.
        while head.count("`") % 2:
            head = head[: head.rfind("`")]
        while head.count("(") > head.count(")"):
            head = head[: head.rfind("(")]
        head = head.rstrip(" ,;:-(/\u2013\u2014")
        return _whole_clause(head) or None
    return _last_sentence(value)


_JOINING = frozenset({*JOINING_WORDS, "but"})
_CLAUSE_BREAK = re.compile(r",\s|;\s|\s(?:or|and|but)\s")


# Words a cut cell does not end on either: "failed during a" loses both.
_DANGLING = frozenset(
    {
        *_JOINING,
        *("during", "from", "into", "onto", "at", "on", "as", "than", "that", "which"),
        *("when", "if", "after", "before", "via", "per", "while", "because", "its"),
        *("their", "is", "are", "be", "was", "were"),
    }
)


def _whole_clause(head: str) -> str:
    """A cut cell without the clause the cut broke off, when half is left: "Retry
    the operation later or contact the" (Qwen2.5-Coder-1.5B) to "Retry the operation later".
    """
    words = head.split()
    while len(words) > 1 and words[-1].lower() in _DANGLING:
        words.pop()
    head = " ".join(words).rstrip(" ,;:-(/\u2013\u2014")
    breaks = [m.start() for m in _CLAUSE_BREAK.finditer(head)]
    if breaks and breaks[-1] >= len(head) / 2:
        return head[: breaks[-1]].rstrip(" ,;")
    return head


def _last_clause(text: str) -> str | None:
    """A list item with no sentence to keep, closed at its last clause break, or None.

    Items are often one long enumeration ("**Order of Implementation**:
    `Signer` first, then `RetryPolicy`, then ..."); one stopped with no
    full stop keeps its clauses up to the last comma or semicolon, closed with
    a full stop, if that is at least half of it, has no open bracket and does
    not end on a word that joins.
    """
    for match in reversed(list(re.finditer(r"[,;] ", text))):
        head = text[: match.start()].rstrip()
        if len(head) * 2 < len(text):
            return None
        balanced = all(head.count(o) == head.count(c) for o, c in ("()", "[]", "{}"))
        marks = head.count("`") % 2 == 0 and head.count("**") % 2 == 0
        if balanced and marks and not _OPEN_ITEM.search(head):
            return head + "."
    return None


def get_path(content: Any, path: tuple[str | int, ...]) -> Any:
    """The value at `path` (keys and list indexes) inside a reply."""
    for key in path:
        content = content[key]
    return content


def set_path(content: Any, path: tuple[str | int, ...], value: Any) -> None:
    """Put `value` at `path` inside a reply."""
    get_path(content, path[:-1])[path[-1]] = value


def left_out(cut: Cut) -> str:
    """The note that stands where a field's cut text was left out."""
    if not cut.at_bound:
        return f"The model's text for {cut.name} ended mid-sentence and was left out."
    return (
        f"The model's text for {cut.name} was cut off at its limit of {cut.bound} "
        "characters twice and was left out."
    )


def apply_trims(content: dict[str, Any], cuts: list[Cut]) -> tuple[dict[str, Any], list[str]]:
    """`content` with every cut trimmed back to where it last ended; a note on each.

    What holds nothing whole to keep is left out, visibly: a text part becomes
    a note saying so, a list item goes (a list left empty holds the note), a
    code block is dropped with the note, an intro is emptied, a cell gets a dash.
    """
    notes: list[str] = []
    dropped: dict[tuple[str | int, ...], list[Cut]] = {}
    for cut in cuts:
        value = get_path(content, cut.path)
        parent: Any = get_path(content, cut.path[:-1])
        trimmed = trim(cut, value)
        if trimmed is None and cut.kind == "item":
            trimmed = _last_clause(value)
        if trimmed is not None:
            if trimmed != value:
                parent[cut.path[-1]] = trimmed
                notes.append(
                    f"{cut.name}: {cut.why}; "
                    f"kept the first {len(trimmed)} characters, up to where it last ended"
                )
            continue
        notes.append(f"{cut.name}: {cut.why}; left out")
        key = cut.path[-1]
        if cut.kind == "item" and isinstance(key, int):
            dropped.setdefault(cut.path[:-1], []).append(cut)
        elif cut.kind == "code":
            parent["code"] = ""
            parent["dropped"] = left_out(cut)
        elif cut.kind == "cell":
            parent[key] = "-"
        elif len(cut.path) > 1:  # a code block's intro
            parent[key] = ""
        else:
            parent[key] = f"> **Note:** {left_out(cut)}"
    for path, item_cuts in dropped.items():
        indexes = {c.path[-1] for c in item_cuts}
        items = get_path(content, path)
        kept = [v for i, v in enumerate(items) if i not in indexes]
        parent = get_path(content, path[:-1])
        # The list's note, in the words of its first item's: its limit, or mid-sentence.
        first = item_cuts[0]
        whole = Cut(path, first.bound, "item", at_bound=first.at_bound)
        parent[path[-1]] = kept or [f"*{left_out(whole)}*"]
    return content, notes
