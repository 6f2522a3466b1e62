"""List items and paragraphs that are not the model's answer: repeats, the prompt, fragments.

Qwen2.5-Coder-1.5B, asked for four labelled bullets, has written the same
bullet four times, copied the part's guidance back ("**Design Patterns**
(which pattern, in which class or module), ..."), and left pieces of it as
items of their own ("them)"). None of that is about the TDD; shipped, it
reads as the document's content. Pure code, no call: such items and
paragraphs are taken out with a note, and a list or text left empty says so.
Imports `agent.core` only.
"""

from __future__ import annotations

import re
from typing import Any

from agent.core.templates import Part, Section

# A run of this many words shared with the guidance is copied, not written.
_ECHO_RUN = 8
# An item or paragraph whose words are mostly inside such runs is the prompt.
_ECHO_SHARE = 0.5
_PAIRS = ("()", "[]")


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


def fragment(item: str) -> bool:
    """An item that starts inside a sentence: lower-case, closing a bracket it never opened."""
    text = item.strip().lstrip("*_` ")
    unopened = any(text.count(c) > text.count(o) for o, c in _PAIRS)
    return bool(text) and text[0].islower() and unopened


def _left_out(part: Part) -> str:
    return (
        f"The model's text for {part.title} repeated itself or its instructions, not the "
        "TDD, and was left out."
    )


def drop_echoes(section: Section, content: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`content` without repeated items, items or paragraphs copied from the prompt, fragments."""
    notes: list[str] = []
    # Any part's guidance: a model copies its neighbour's as readily as its own.
    guidance = "\n".join([section.guidance, *(p.guidance for p in section.parts)])
    for part in section.parts:
        value = content.get(part.id)
        if part.kind == "list" and isinstance(value, list):
            kept: list[Any] = []
            seen: set[str] = set()
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    kept.append(item)
                    continue
                key = " ".join(item.split()).lower()
                why = (
                    "the same as an item before it"
                    if key in seen
                    else "copied from the instructions"
                    if echoes(item, guidance)
                    else "a piece of a sentence"
                    if fragment(item)
                    else ""
                )
                seen.add(key)
                if why:
                    notes.append(f"{part.id} item {i + 1}: {why}; left out")
                else:
                    kept.append(item)
            if len(kept) < len(value):
                content[part.id] = kept or [f"*{_left_out(part)}*"]
        elif part.kind == "text" and isinstance(value, str):
            paragraphs = re.split(r"\n\s*\n", value.strip())
            kept_text = [p for p in paragraphs if not echoes(p, guidance)]
            if len(kept_text) < len(paragraphs):
                notes.append(f"{part.id}: copied from the instructions; left out")
                content[part.id] = "\n\n".join(kept_text) or f"> **Note:** {_left_out(part)}"
    return content, notes
