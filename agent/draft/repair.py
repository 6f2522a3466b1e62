"""Repairing a validated section: strings cut at their bound or left unfinished.

A string that stopped at its bound mid-sentence is trimmed back to where it
last ended, or asked for again once when nothing whole would be left; code is
`agent.draft.code_repair`'s. Imports core, document, providers and the draft
stage's prompts and calls; never section drafting, a later stage or a front end.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from agent.core.records import CallRecord, Event, Progress
from agent.core.templates import Section
from agent.document.assemble import unfence
from agent.document.echoes import drop_echoes, join_split_items
from agent.document.intact import (
    Cut,
    apply_trims,
    find_cuts,
    find_unfinished,
    get_path,
    set_path,
    trim,
)
from agent.document.mend import (
    cut_line_loops,
    tidy_code,
)
from agent.draft.calls import structured_call
from agent.draft.prompting import fill, lines_for, load_prompt, words_for
from agent.providers.base import Message, Provider, fitted_schema

REWRITE_PROMPT_ID = "rewrite_cut"


def _cut_keys(cuts: list[Cut]) -> list[str]:
    """The JSON key each cut field is asked for under: `coding_patterns_item_2`, unique."""
    keys: list[str] = []
    for cut in cuts:
        key = re.sub(r"[^A-Za-z0-9]+", "_", cut.name).strip("_") or "field"
        while key in keys:
            key += "_"
        keys.append(key)
    return keys


def _cut_line(key: str, cut: Cut, value: str) -> str:
    """One cut field as the rewrite ask lists it: its key, its size, and the text as it stopped."""
    label = key if key == cut.name else f"{key} ({cut.name})"
    if cut.kind == "code":
        code = unfence(value).strip("\n")
        return (
            f"- {label}: {cut.language} code, at most {lines_for(cut.bound)} lines. "
            f"As it stopped:\n```{cut.language}\n{code}\n```"
        )
    text = " ".join(value.split())
    return f'- {label}: at most {words_for(cut.bound)} words. As it stopped: "{text}"'


def rewrite_model(keys: list[str], cuts: list[Cut]) -> type[BaseModel]:
    """The reply a rewrite call must return: each cut field under its key, at its bound."""
    fields: dict[str, Any] = {
        k: (str, Field(max_length=c.bound)) for k, c in zip(keys, cuts, strict=True)
    }
    return create_model("RewrittenFields", __config__=ConfigDict(extra="forbid"), **fields)


async def _rewrite_cut(
    provider: Provider,
    section: Section,
    messages: list[Message],
    content: dict[str, Any],
    cuts: list[Cut],
    *,
    max_tokens: int,
    on_event: Progress,
) -> tuple[dict[str, Any], list[CallRecord]]:
    """One call for the cut fields only, each written again; `content` with them in place."""
    prompt = load_prompt(REWRITE_PROMPT_ID)
    keys = _cut_keys(cuts)
    model = rewrite_model(keys, cuts)
    ask = Message(
        role="user",
        content=fill(
            prompt.user,
            fields="\n".join(
                _cut_line(k, c, str(get_path(content, c.path)))
                for k, c in zip(keys, cuts, strict=True)
            ),
            keys=", ".join(f'"{k}": "..."' for k in keys),
        ),
    )
    # The draft's conversation without its reply: the server has that prefix
    # cached, while the reply, tokenized again, would be evaluated again (~500
    # to 1,000 tokens on Qwen2.5-Coder); the ask quotes what was cut.
    again, calls, _ = await structured_call(
        provider,
        prompt,
        model,
        [*messages, ask],
        label=section.id,
        schema_name=f"section_{section.id}_cut",
        max_tokens=max_tokens,
        on_event=on_event,
    )
    if again is None:
        return content, calls
    content = copy.deepcopy(content)
    for key, cut in zip(keys, cuts, strict=True):
        value = str(getattr(again, key, ""))
        value = unfence(value).strip("\n") if cut.kind == "code" else value.strip()
        if value:
            # An empty answer keeps the cut text, which the trim then handles.
            set_path(content, cut.path, value)
    return content, calls


async def uncut(
    provider: Provider,
    section: Section,
    messages: list[Message],
    content: dict[str, Any],
    *,
    schema: dict[str, Any],
    max_tokens: int,
    on_event: Progress,
    fitted: bool = True,
) -> tuple[dict[str, Any], list[str], list[CallRecord]]:
    """`content` with no string stopped at its bound mid-sentence: trimmed, or asked again once.

    A string that reached its (fitted) bound without ending goes back to its
    last complete sentence (a cell to its last whole word, bash or a tree to
    its last whole line), with no call. Only those with nothing whole to keep
    are asked for again, those fields only, in one call (`_rewrite_cut`);
    code we can parse is the code repair's (`repair_code`). What is still cut
    after that, and prose the model ended mid-word itself (`find_unfinished`),
    is trimmed the same way, or left out with a note (`apply_trims`).

    Around that, no calls: code parts lose fence lines and repetition loops
    first (`tidy_code`), and list items broken in two are joined
    (`join_split_items`); last, items and paragraphs that repeat or copy the
    instructions (`drop_echoes`) are left out with notes; a line of bash or
    text that repeats itself is cut after its first copy (`cut_line_loops`).
    Code parts with no code of their own are `write_hollow`'s, which comes after.

    Trimming first, because asking cost more than it gave: on the example TDD,
    asking Qwen2.5-Coder-1.5B again for every cut field took 8 calls and 249
    of 857 s, and 5 fields came back cut again.
    """
    content, looped = tidy_code(section, content)
    # The bounds the provider's grammar enforced, which is where a string stops
    # (`fitted` False: `schema`'s own, as a markdown reply's grammar holds them).
    bounds = fitted_schema(provider, schema, max_tokens) if fitted else schema
    at_bound = frozenset(c.path for c in find_cuts(section, content, bounds))
    content, joined = join_split_items(section, content, at_bound)
    cuts = find_cuts(section, content, bounds)
    calls: list[CallRecord] = []
    empty = [c for c in cuts if trim(c, str(get_path(content, c.path))) is None]
    if empty:
        cut = "cut at the length limit: " + ", ".join(c.name for c in empty)
        on_event(Event(kind="retry", section=section.id, detail=cut))
        content, calls = await _rewrite_cut(
            provider, section, messages, content, empty, max_tokens=max_tokens, on_event=on_event
        )
        cuts = find_cuts(section, content, bounds)
    stopped = {c.path for c in cuts}
    cuts += [c for c in find_unfinished(section, content) if c.path not in stopped]
    content, notes = apply_trims(content, cuts)
    # Last: what is left of an item or paragraph after trimming is what may repeat.
    # The section's ask, first of its requests (a revision's come after it).
    ask = next((m.content for m in messages if m.role == "user"), "")
    content, echoed = drop_echoes(section, content, ask)
    # Last too, and only where no repair follows: a repair's request holds the code.
    content, line_loops = cut_line_loops(section, content)
    return content, [*looped, *joined, *notes, *echoed, *line_loops], calls
