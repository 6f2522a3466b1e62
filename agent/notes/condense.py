"""Note condensing: search hits turned into short cited notes, and the notes block.

Condensing is a structured call validated like a section draft: an invalid
reply is asked again once with the error. Unlike a section, research is
optional help, so a second failure falls back to code (notes from the top
passages) instead of stopping the run. Query planning is `agent.notes.queries`'s.

Search results are untrusted. They reach the model only inside an
<untrusted-data> fence whose tags they cannot forge, and reach the section
prompts only inside a <research-notes> fence; sentences that read like
instructions to a model are dropped on the way in and on the way out.
That filter is a heuristic: an injection it does not recognise stays in the
notes, but always inside the fence, labelled as untrusted data.

Imports core, providers, the draft stage's prompts and calls, and research's
value types; never the pipeline or a front end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from agent.core.records import CallRecord, Event, Progress
from agent.core.templates import Template
from agent.core.tokens import count_tokens, truncate_tokens
from agent.draft.calls import structured_call
from agent.draft.prompting import PromptFile, fence_safe, fill, format_note, load_prompt
from agent.notes.queries import (
    QUERIES_PROMPT,
    fallback_queries,
    list_of,
    plan_queries,
    prompt_budget,
    query_plan_model,
)
from agent.providers.base import Message, Provider
from research.base import Note, Passage, Query

NOTES_PROMPT = "research_notes"
MAX_NOTE_CALLS = 3
NOTES_PER_CALL = 6
PASSAGE_TOKENS = 300
BATCH_TOKENS = 3000


def prompt_versions() -> dict[str, str]:
    """The version of each research prompt (queries and notes), for the run record."""
    return {p: load_prompt(p).version for p in (QUERIES_PROMPT, NOTES_PROMPT)}


# --- untrusted text -------------------------------------------------------------

# Our fence tags: text from a source must not be able to close a fence early.
# Sentences that address a model rather than inform a reader.
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,80}?"
    r"\b(instructions?|prompts?|rules?|guidelines?|directions?|context)\b"
    r"|\b(system prompt|you are now|new instructions|as an ai)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def neutralise(text: str) -> str:
    """The text with our fence tags defused (`<untrusted-data` -> `&lt;untrusted-data`)."""
    return fence_safe(text)


def drop_instructions(text: str) -> tuple[str, int]:
    """The text without sentences that read like instructions to a model, and how many."""
    if not _INSTRUCTION.search(text):
        return text, 0
    kept: list[str] = []
    dropped = 0
    for sentence in _SENTENCE.split(text):
        if _INSTRUCTION.search(sentence):
            dropped += 1
        elif sentence.strip():
            kept.append(sentence.strip())
    return " ".join(kept), dropped


def clean(text: str) -> tuple[str, int]:
    """Untrusted text made safe to place inside a fence: filtered, then defused."""
    kept, dropped = drop_instructions(text)
    return neutralise(kept), dropped


# --- condensing -------------------------------------------------------------------


def note_batch_model(labels: Sequence[str], max_notes: int) -> type[BaseModel]:
    label: Any = Literal[tuple(labels)]
    item = create_model(
        "ResearchNote",
        text=(
            Annotated[str, Field(min_length=10, max_length=400)],
            Field(description="one concrete fact, decision, version or practice"),
        ),
        passages=(
            list_of(label),
            Field(min_length=1, max_length=4, description="labels of the results it comes from"),
        ),
    )
    notes = (list_of(item), Field(min_length=1, max_length=max_notes))
    return create_model("ResearchNotes", notes=notes)


def batches(passages: list[Passage], max_calls: int = MAX_NOTE_CALLS) -> list[list[Passage]]:
    """Passages grouped by source kind, at most `max_calls` groups (the tail merged)."""
    groups: dict[str, list[Passage]] = {}
    for p in passages:
        groups.setdefault(p.kind, []).append(p)
    out = list(groups.values())
    if len(out) > max_calls:
        out = [*out[: max_calls - 1], [p for g in out[max_calls - 1 :] for p in g]]
    return out


def code_notes(passages: list[Passage]) -> list[tuple[str, list[str]]]:
    """Notes built from verbatim passages (codebase facts), text unchanged but defused."""
    return [(neutralise(p.text.strip()), [p.source_id]) for p in passages if p.text.strip()]


def _excerpt_note(passage: Passage) -> tuple[str, int]:
    text, dropped = clean(" ".join(passage.text.split()))
    # Headings and list marks read badly in a one-line note.
    text = re.sub(r"(^|\s)#{1,6}\s", r"\1", text)
    if len(text) > 400:
        text = text[:397].rsplit(" ", 1)[0] + "…"
    return (f"{passage.title}: {text}" if text else ""), dropped


def _notesprompt_budget(
    prompt: PromptFile,
    provider: Provider,
    system: str,
    query_list: str,
    batch_size: int,
    max_tokens: int,
) -> int:
    """Tokens the passages of one batch may take, after the reply and the prompt text."""
    probe = note_batch_model([f"P{i + 1}" for i in range(batch_size)], NOTES_PER_CALL)
    skeleton = fill(
        prompt.user,
        queries=query_list,
        passages="",
        max_notes=str(NOTES_PER_CALL),
        format_note=format_note(prompt, probe.model_json_schema(), provider.schema_in_text),
    )
    return min(BATCH_TOKENS, prompt_budget(provider, max_tokens, system + skeleton))


def _passage_blocks(batch: list[Passage], budget: int) -> tuple[list[Passage], list[str], int]:
    """The passages that fit `budget`, as labelled, cleaned blocks; and sentences dropped."""
    shown: list[Passage] = []
    blocks: list[str] = []
    used = 0
    dropped_total = 0
    for p in batch:
        text, dropped = clean(truncate_tokens(p.text, PASSAGE_TOKENS))
        dropped_total += dropped
        block = f"[P{len(shown) + 1}] {neutralise(p.title)} ({neutralise(p.source_id)})\n{text}"
        cost = count_tokens(block)
        if used + cost > budget:
            break
        used += cost
        shown.append(p)
        blocks.append(block)
    return shown, blocks, dropped_total


async def _ask_notes(
    prompt: PromptFile,
    provider: Provider,
    system: str,
    query_list: str,
    blocks: list[str],
    label: str,
    *,
    max_tokens: int,
    on_event: Progress,
) -> tuple[BaseModel | None, list[str], list[CallRecord]]:
    """One notes call over a batch's blocks: the reply (None: unusable), its labels, calls."""
    labels = [f"P{i + 1}" for i in range(len(blocks))]
    model = note_batch_model(labels, NOTES_PER_CALL)
    user = fill(
        prompt.user,
        queries=query_list,
        passages="\n\n".join(blocks),
        max_notes=str(NOTES_PER_CALL),
        format_note=format_note(prompt, model.model_json_schema(), provider.schema_in_text),
    )
    messages = [Message(role="system", content=system), Message(role="user", content=user)]
    parsed, calls, _ = await structured_call(
        provider,
        prompt,
        model,
        messages,
        label=label,
        schema_name=label.replace(":", "_"),
        max_tokens=max_tokens,
        on_event=on_event,
    )
    return parsed, labels, calls


def _add_model_notes(
    reply: BaseModel, shown: list[Passage], labels: list[str], notes: list[tuple[str, list[str]]]
) -> int:
    """The reply's notes appended to `notes` (cleaned, new text only); sentences dropped."""
    dropped_total = 0
    for item in reply.model_dump()["notes"]:
        text, dropped = clean(" ".join(str(item["text"]).split()))
        dropped_total += dropped
        cited = [shown[labels.index(lab)].source_id for lab in item["passages"]]
        ids = list(dict.fromkeys(cited))
        if text and ids and text not in {t for t, _ in notes}:
            notes.append((text, ids))
    return dropped_total


def _add_excerpt_notes(shown: list[Passage], notes: list[tuple[str, list[str]]]) -> int:
    """Excerpts of the first passages appended to `notes`, for an unusable reply."""
    dropped_total = 0
    for p in shown[:3]:
        text, dropped = _excerpt_note(p)
        dropped_total += dropped
        if text:
            notes.append((text, [p.source_id]))
    return dropped_total


async def condense(
    passages: list[Passage],
    queries: list[Query],
    provider: Provider,
    template: Template,
    feature: str,
    *,
    max_tokens: int,
    on_event: Progress,
) -> tuple[list[tuple[str, list[str]]], list[CallRecord], list[str], list[Passage]]:
    """Notes (text, source ids) from bounded calls, one per source batch.

    Returns the notes, the calls, warnings, and the passages the model was shown.
    """
    prompt = load_prompt(NOTES_PROMPT)
    notes: list[tuple[str, list[str]]] = []
    calls: list[CallRecord] = []
    warnings: list[str] = []
    shown_all: list[Passage] = []
    dropped_total = 0
    query_list = "\n".join(f"- {q.text}" for q in queries)
    system = fill(prompt.system, doc_name=template.title, feature=feature)
    for n, batch in enumerate(batches(passages), start=1):
        label = f"research:notes:{n}"
        budget = _notesprompt_budget(prompt, provider, system, query_list, len(batch), max_tokens)
        shown, blocks, dropped = _passage_blocks(batch, budget)
        dropped_total += dropped
        if not shown:
            continue
        shown_all.extend(shown)
        parsed, labels, batch_calls = await _ask_notes(
            prompt,
            provider,
            system,
            query_list,
            blocks,
            label,
            max_tokens=max_tokens,
            on_event=on_event,
        )
        calls.extend(batch_calls)
        if parsed is None:
            warnings.append(f"{label}: the model's notes were not usable; kept excerpts instead")
            on_event(Event(kind="info", section=label, detail=warnings[-1]))
            dropped_total += _add_excerpt_notes(shown, notes)
            continue
        dropped_total += _add_model_notes(parsed, shown, labels, notes)
    if dropped_total:
        warnings.append(
            f"dropped {dropped_total} sentence(s) from research text that read like "
            "instructions to a model"
        )
        on_event(Event(kind="info", section="research", detail=warnings[-1]))
    return notes, calls, warnings, shown_all


# --- the notes in the section prompts ------------------------------------------------


def render_block(notes: list[Note], max_tokens: int | None = None) -> str:
    """The notes fenced as untrusted data, with the instructions around them."""
    if not notes:
        return ""
    prompt = load_prompt(NOTES_PROMPT)
    lines = [
        f"[{n.id}] {neutralise(n.text)}\n    (sources: {neutralise(', '.join(n.source_ids))})"
        for n in notes
    ]
    while lines:
        block = fill(prompt.block, notes="\n".join(lines)).strip()
        if max_tokens is None or count_tokens(block) <= max_tokens:
            return block
        # The last notes are the least relevant: drop them first.
        lines.pop()
    return ""


__all__ = [
    "NOTES_PROMPT",
    "batches",
    "clean",
    "code_notes",
    "condense",
    "drop_instructions",
    "fallback_queries",
    "neutralise",
    "note_batch_model",
    "plan_queries",
    "prompt_versions",
    "query_plan_model",
    "render_block",
]
