"""List items and paragraphs that are not the model's answer: repeats, the prompt, fragments.

Qwen2.5-Coder-1.5B, asked for four labelled bullets, has written the same
bullet four times, copied the part's guidance back ("**Design Patterns**
(which pattern, in which class or module), ..."), and left pieces of it as
items of their own ("them)"); with the labels named but not shown, it wrote
one sentence three times over in each bullet. None of that is about the TDD; shipped, it
reads as the document's content. Pure code, no call: such items and
paragraphs are taken out with a note, and a list or text left empty says so.
Imports `agent.core` only.
"""

from __future__ import annotations

import re
from typing import Any, cast

from agent.core.templates import Part, Section, opens_not_applicable
from agent.document.intact import JOINING_WORDS, ends_cleanly

# A run of this many words shared with the guidance is copied, not written.
_ECHO_RUN = 8
# An item or paragraph whose words are mostly inside such runs is the prompt.
_ECHO_SHARE = 0.5
_PAIRS = ("()", "[]")
# Where one sentence ends and the next begins, in one line of prose.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z*`\"'(])")


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def _runs(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + _ECHO_RUN]) for i in range(len(words) - _ECHO_RUN + 1)}


def echoes(text: str, guidance: str) -> bool:
    """Whether most of `text` is copied from `guidance`, in runs of eight words or more."""
    words = _words(text)
    known = _runs(_words(guidance))
    if not words or not known:
        return False
    covered = [False] * len(words)
    for i in range(len(words) - _ECHO_RUN + 1):
        if tuple(words[i : i + _ECHO_RUN]) in known:
            covered[i : i + _ECHO_RUN] = [True] * _ECHO_RUN
    return sum(covered) >= _ECHO_SHARE * len(words)


# "**Unit**: ...", "Unit: ...": an item that opens with a label.
_LABEL = re.compile(r"^\s*(\*\*[^*\n]{1,40}\*\*|[A-Z][\w /&-]{0,30}:)")


# Words a labelled item's text needs before it counts as said already when
# another label's gave it.
_SAID_WORDS = 6


def split_label(item: str) -> tuple[str, str]:
    """An item's label with what follows it ("**At Rest**: "), and the rest."""
    match = _LABEL.match(item)
    if match is None:
        return "", item
    rest = item[match.end() :]
    gap = len(rest) - len(rest.lstrip(": "))
    return item[: match.end() + gap], rest[gap:]


def labelled(items: list[str]) -> bool:
    """Whether most items of a list open with a label."""
    return sum(bool(_LABEL.match(i)) for i in items) * 2 > len(items)


def fragment(item: str, *, in_labelled: bool = False) -> bool:
    """An item that starts inside a sentence.

    Lower-case and closing a bracket or code span it never opened; or, in a list whose items
    open with labels, lower-case with no label ("classification.": the end of
    the item before it, given as an item of its own).
    """
    text = item.strip().lstrip("*_` ")
    # A code span it closes and never opens counts too ("follow_redirects=False`.").
    unopened = any(text.count(c) > text.count(o) for o, c in _PAIRS) or item.count("`") % 2 == 1
    unlabelled = in_labelled and not _LABEL.match(item)
    return bool(text) and text[0].islower() and (unopened or unlabelled)


def join_split_items(
    section: Section,
    content: dict[str, Any],
    stopped: frozenset[tuple[str | int, ...]] = frozenset(),
) -> tuple[dict[str, Any], list[str]]:
    """List items the model broke in two put back together, with a note each.

    An item that starts lower-case with no label, after an item that stops
    open (a space or a joining word at its end, no full stop) or that its
    bound stopped mid-sentence (its path in `stopped`), is that item's end:
    Qwen2.5-Coder-1.5B gave "Unit: ... `Signer` against fixed vectors,
    outcome " and "classification." as two items, the TDD's one sentence;
    under a bound of 300 characters an item, it wrote its Development
    Approach as one text in four items, each stopped at the bound and the
    next going on with the sentence ("… to ensure it can be", "used
    correctly. …"). Joined, it is whole (what the last piece leaves open is
    trimmed as any cut); apart, the pieces read as nonsense.
    """
    notes: list[str] = []
    for part in section.parts:
        value = content.get(part.id)
        if part.kind != "list" or not isinstance(value, list):
            continue
        joined: list[Any] = []
        for i, item in enumerate(cast("list[Any]", value)):
            before = joined[-1] if joined else None
            at_bound = (part.id, i - 1) in stopped
            if (
                isinstance(item, str)
                and isinstance(before, str)
                and _continues(before, item, at_bound=at_bound)
            ):
                joined[-1] = f"{before.rstrip()} {item.strip()}"
                notes.append(f"{part.id} item {i + 1}: the end of the item before it; joined to it")
            else:
                joined.append(item)
        content[part.id] = joined
    return content, notes


# Words a sentence does not stop on (intact's): the item after one like it goes on with it.
_OPEN_END = re.compile(rf"(?:,|;|\b(?:{'|'.join(JOINING_WORDS)}))\s*$", re.IGNORECASE)


def _continues(before: str, item: str, *, at_bound: bool = False) -> bool:
    text = item.strip()
    if not text or not text[0].islower() or _LABEL.match(item) or ends_cleanly(before):
        return False
    return at_bound or before != before.rstrip() or bool(_OPEN_END.search(before))


def once(text: str, seen: set[str]) -> str:
    """`text` without the sentences in `seen` or given twice in it; adds its own to `seen`.

    Only one-line prose is split: a line break means a list, table or code.
    """
    if "\n" in text.strip():
        return text
    kept: list[str] = []
    for sentence in _SENTENCE_SPLIT.split(text.strip()):
        key = " ".join(_words(sentence))
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(sentence)
    return " ".join(kept)


# A run of 8 to 80 characters given again and again, in a row: a loop, keyed by
# how many times in all.
_LOOPS = {times: re.compile(rf"(.{{8,80}}?)\1{{{times - 1},}}") for times in (3, 5)}


def loop_in(text: str, times: int) -> re.Match[str] | None:
    """The first run of 8 to 80 characters `text` gives `times` times or more in a row.

    The run needs four distinct characters: a rule of "=" or "-" repeats too,
    a loop repeats words. `times` is 3 (prose) or 5 (a line of code).
    """
    return next(
        (m for m in _LOOPS[times].finditer(text) if len(set(m.group(1).strip())) >= 4), None
    )


# A run of 40 to 400 characters given twice in a row: a long loop, cut after
# the first copy (a short one has to come three times: `_LOOPS`).
_TWICE = re.compile(r"(\S.{38,398}?\S)\s+\1", re.DOTALL)


def once_through(text: str) -> str:
    """`text` up to the end of the first long run it then gives again, closed as a sentence.

    Qwen2.5-Coder-1.5B's API Specification listed five routes, then the same
    five again, then the first once more, until its bound. The first copy is
    the answer; the rest is the loop.
    """
    match = _TWICE.search(text)
    if match is None or len(set(match.group(1))) < 8:
        return text
    head = text[: match.end(1)].rstrip(" ,;:")
    return head if ends_cleanly(head) else head + "."


def looped(text: str) -> bool:
    """Whether `text` repeats a phrase in a loop (three times or more).

    Qwen2.5-Coder-1.5B, given "at most 13 words, 1 sentence" for a bullet,
    wrote "13 words, 1 sentence, " six times as the bullet.
    """
    return loop_in(text, 3) is not None


# Something concrete: a code span, a number, a CamelCase or dotted name.
_CONCRETE = re.compile(r"`|\d|\b[A-Za-z]+[a-z][A-Z]\w*|\b[A-Z]{2,}[a-z]\w*|\w\.\w")
_ABOUT_THE_TDD = re.compile(r"\bthe TDD\b", re.IGNORECASE)


def vacuous(item: str) -> bool:
    """An item that talks about "the TDD's components" and names none of them.

    The document is for developers who need the names; Qwen2.5-Coder-1.5B, asked
    for "the TDD's components in the order to build them", wrote "The team will
    use the TDD's components to build the feature first and next."
    """
    # "Not applicable: No CLI defined in the TDD." is a whole answer, which the
    # template asks for in those words.
    if opens_not_applicable(item):
        return False
    return bool(_ABOUT_THE_TDD.search(item)) and not _CONCRETE.search(item)


def _left_out(part: Part) -> str:
    return (
        f"The model's text for {part.title} repeated itself or its instructions, or named "
        "nothing from the TDD, and was left out."
    )


def _why(
    item: str, key: str, guidance: str, seen: set[str], in_labelled: bool, keys: set[str]
) -> str:
    """Why a list item (`key`: its words, spaced and cased alike) is not an answer, or ""."""
    if key in seen:
        return "the same as an item before it"
    if echoes(item, guidance):
        return "copied from the instructions"
    if fragment(item, in_labelled=in_labelled):
        return "a piece of a sentence"
    if looped(item):
        return "a phrase repeated in a loop"
    if vacuous(item):
        return "about the TDD, naming nothing from it"
    if key.strip("`*_ ") in keys:
        return "a field's name, not an answer"
    return ""


def _list_answers(
    part: Part, value: list[Any], guidance: str, keys: set[str]
) -> tuple[list[Any], list[str]]:
    """A list's items that answer, each sentence once; a note on each change."""
    kept: list[Any] = []
    notes: list[str] = []
    seen: set[str] = set()
    sentences: set[str] = set()  # of every item kept so far
    in_labelled = labelled([v for v in value if isinstance(v, str)])
    for i, item in enumerate(value):
        if not isinstance(item, str):
            kept.append(item)
            continue
        key = " ".join(item.split()).lower()
        why = _why(item, key, guidance, seen, in_labelled, keys)
        seen.add(key)
        if not why:
            # After its label: "At Rest: Secrets are derived and never stored in
            # the database." came again as In Transit and as Sensitive Data.
            # A short answer may well be another label's too ("Unit: pytest.").
            label, body = split_label(item)
            short = bool(label) and len(body.split()) < _SAID_WORDS
            whole = body if short or opens_not_applicable(body) else once(body, sentences)
            if not whole:
                why = "only sentences given before"
            elif whole != body:
                notes.append(f"{part.id} item {i + 1}: a sentence given twice; kept once")
                item = label + whole
        if why:
            notes.append(f"{part.id} item {i + 1}: {why}; left out")
        else:
            kept.append(item)
    return kept, notes


def _text_answers(part: Part, value: str, guidance: str) -> tuple[list[str], list[str]]:
    """A text's paragraphs that answer, each sentence once; a note on each change."""
    notes: list[str] = []
    paragraphs = re.split(r"\n\s*\n", value.strip())
    kept = [p for p in paragraphs if not echoes(p, guidance)]
    if len(kept) < len(paragraphs):
        notes.append(f"{part.id}: copied from the instructions; left out")
    # A fence's lines, split at blank lines, would read as paragraphs.
    if "```" in value or "~~~" in value:
        return kept, notes
    unlooped = [p for p in kept if not looped(p)]
    if len(unlooped) < len(kept):
        kept = unlooped
        notes.append(f"{part.id}: a phrase repeated in a loop; left out")
    through = [once_through(p) for p in kept]
    if through != kept:
        kept = through
        notes.append(f"{part.id}: a long run given again in a row; cut after its first copy")
    said: set[str] = set()
    whole = [w for w in (once(p, said) for p in kept) if w]
    if whole != kept:
        notes.append(f"{part.id}: a sentence given twice; kept once")
    return whole, notes


def drop_echoes(
    section: Section, content: dict[str, Any], ask: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """`content` without repeated items, items or paragraphs copied from the prompt, fragments.

    `ask` is the section's request as sent (its guidance, the TDD names listed
    for it, each field's limits): "The order of implementation will be:" and
    the twelve listed names in their listed order is the ask read back.
    """
    notes: list[str] = []
    # Any part's guidance: a model copies its neighbour's as readily as its own.
    guidance = "\n".join([section.guidance, *(p.guidance for p in section.parts), ask])
    # The reply's own keys: "- tdd_refs" has been given as a list's last item.
    keys = {p.id for p in section.parts} | {"tdd_refs", "note_refs"}
    for part in section.parts:
        value = content.get(part.id)
        if part.kind == "list" and isinstance(value, list):
            # A note for every item changed or left out: no note, nothing changed.
            kept, more = _list_answers(part, value, guidance, keys)
            if more:
                content[part.id] = kept or [f"*{_left_out(part)}*"]
        elif part.kind == "text" and isinstance(value, str):
            paragraphs, more = _text_answers(part, value, guidance)
            if more:
                content[part.id] = "\n\n".join(paragraphs) or f"> **Note:** {_left_out(part)}"
        else:
            continue
        notes += more
    return content, notes
