"""Prompt files → messages. Prompts are versioned data in `prompts/`.

Every section call of a run starts with the same system message (template
system text + TDD), byte for byte, so provider prompt caches hit; only the
user message that follows differs per section. Imports core and providers
only; never the rest of the draft stage, a later stage or a front end.
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template as Subst
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.errors import ConfigError
from agent.core.templates import (
    INTRO_CHARS,
    Part,
    Section,
    Template,
    column_keys,
    section_heading,
    section_model,
)
from agent.providers.base import Message
from agent.providers.fitting import resolve_ref

# The tags our prompts fence untrusted text with. Inside fenced text, each
# one is defused (`</tdd>` -> `&lt;/tdd>`), so the text cannot close its fence
# early and speak as the prompt, nor forge another fence.
_FENCE_TAG = re.compile(
    r"<(\s*/?\s*)(tdd|document|untrusted-data|research-notes)(?![\w-])", re.IGNORECASE
)


def fence_safe(text: str) -> str:
    """Untrusted text with every fence tag of ours defused, for inside a fence."""
    return _FENCE_TAG.sub(lambda m: "&lt;" + m.group(1) + m.group(2), text)


def attribute(value: str) -> str:
    """A value for an XML-style attribute: quotes and angle brackets escaped."""
    return html.escape(" ".join(value.split()), quote=True)


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    version: str = Field(pattern=r"^\d+(\.\d+)*$")
    user: str
    # Optional so that a prompt adding a turn to another's conversation
    # (revise_section) need not repeat fields it never uses.
    system: str = ""
    format_structured: str = ""
    format_in_text: str = ""
    retry: str = ""
    # research_notes: the text that fences the notes inside the section prompts.
    block: str = ""
    # draft_section: the line that lists the TDD names a section is likely to need.
    names: str = ""
    # Named texts the caller picks one of and fills in (write_code: what was found).
    cases: dict[str, str] = Field(default_factory=dict)
    # How the reply is asked for, by reply format ("json", "markdown"): the code calls.
    replies: dict[str, str] = Field(default_factory=dict)


@cache
def load_prompt(prompt_id: str) -> PromptFile:
    path = Path(str(resources.files("prompts"))) / f"{prompt_id}.yaml"
    try:
        return PromptFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"prompt file {path} is broken: {str(e).splitlines()[0]}") from None


def fill(text: str, **values: str) -> str:
    """$name substitution that fails loudly on a missing variable."""
    try:
        return Subst(text).substitute(values)
    except KeyError as e:
        raise ConfigError(
            f"prompt text uses ${e.args[0]} which the caller does not provide"
        ) from None


def format_note(prompt: PromptFile, schema: dict[str, Any], schema_in_text: bool) -> str:
    """The reply-format note; it carries the schema when the endpoint lacks structured output."""
    if not schema_in_text:
        return prompt.format_structured.strip()
    return fill(prompt.format_in_text, schema=json.dumps(schema, separators=(",", ":"))).strip()


# What a small model can aim at. It cannot count characters, and one told
# "at most 869 characters" wrote on until the grammar stopped it mid-statement
# (the recorded Qwen2.5-Coder-1.5B TID: 7 of 10 sections re-asked, 8 code
# blocks cut). So the prompt states words and lines, sized to end about two
# thirds of the way to the bound, which the grammar still enforces. Rates
# measured on the corpus's reference TIDs and the recorded drafts: 7 to 9
# characters a word of prose, 35 to 41 a non-empty line of code. Qwen itself
# kept to these little better (docs/embedded.md): what cut less was room (the
# reply limit) and trimming instead of asking again (`agent.draft.repair`).
CHARS_PER_WORD = 7
CHARS_PER_LINE = 40
AIM = 2 / 3


def words_for(chars: int) -> int:
    """The words to ask for in a string bounded at `chars` characters."""
    return max(3, round(chars * AIM / CHARS_PER_WORD))


def lines_for(chars: int) -> int:
    """The lines of code to ask for in a block bounded at `chars` characters."""
    return max(2, round(chars * AIM / CHARS_PER_LINE))


def _node(schema: dict[str, Any] | None, part: Part, *path: str) -> dict[str, Any]:
    """The schema node at `path` below a part's property ("[]" steps into a list)."""
    if schema is None:
        return {}
    defs = schema.get("$defs", {})
    node = resolve_ref(schema.get("properties", {}).get(part.id, {}), defs)
    for step in path:
        inner = node.get("items", {}) if step == "[]" else node.get("properties", {}).get(step, {})
        node = resolve_ref(inner, defs)
    return node


def part_bounds(part: Part, schema: dict[str, Any] | None) -> tuple[int, int, int]:
    """(characters, fewest items, most items) the schema allows a part.

    Read from the schema the reply is held to, which a provider may have
    fitted to its token limit (`fitted_schema`); the template's own numbers
    when there is none.
    """
    limit, least, most = part.max_chars, part.min_items, part.max_items
    if schema is None:
        return limit, least, most
    if part.kind == "code":
        node = _node(schema, part, "code")
    elif part.kind == "diagram":
        node = _node(schema, part, "components")
    else:
        node = _node(schema, part)
    limit = int(node.get("maxLength", limit))
    return limit, int(node.get("minItems", least)), int(node.get("maxItems", most))


def _inner_bound(part: Part, schema: dict[str, Any], *path: str) -> int:
    """The bound of the string at `path` below a part (an item, a cell, an intro, a role).

    Every string of a section model is bounded; the part's own bound stands in
    for a hand-written schema that leaves one out.
    """
    bound = _node(schema, part, *path).get("maxLength")
    return int(bound) if isinstance(bound, int) else part_bounds(part, schema)[0]


def _describe(part: Part, schema: dict[str, Any]) -> str:
    """How to fill one part, its bounds stated in words and lines."""
    limit, least, most = part_bounds(part, schema)
    count = _count(least, most)
    if part.kind == "text":
        return f"markdown text of at most {words_for(limit)} words"
    if part.kind == "list":
        item = _inner_bound(part, schema, "[]")
        return (
            f"a list of {count} items, each one or two sentences of at most {words_for(item)} words"
        )
    if part.kind == "code":
        intro = _inner_bound(part, schema, "intro")
        return (
            f"an object with intro (one or two sentences, at most {words_for(intro)} words), "
            f"path (file path or empty) and code ({part.language} only, at most "
            f"{lines_for(limit)} lines, never over {limit} characters)"
        )
    if part.kind == "tree":
        holds = _inner_bound(part, schema, "[]", "holds")
        return (
            f"a list of {count} files, each with path (from the repository root, as the TDD "
            f"spells it) and holds (what that file holds, at most {words_for(holds)} words)"
        )
    if part.kind == "diagram":
        duty = _inner_bound(part, schema, "components", "[]", "responsibility")
        return (
            f"an object with components ({count}, each a name and a responsibility of at "
            f"most {words_for(duty)} words) and edges (each a source and target component "
            "name and a label)"
        )
    cells = [_inner_bound(part, schema, "[]", key) for key in column_keys(part)]
    if not part.widths:
        return (
            f"a table: a list of {count} rows with columns {', '.join(part.columns)}, each "
            f"cell at most {words_for(min(cells))} words"
        )
    cols = ", ".join(
        f"{col} (at most {words_for(cell)} words)"
        for col, cell in zip(part.columns, cells, strict=True)
    )
    return f"a table: a list of {count} rows with columns {cols}"


def _count(least: int, most: int) -> str:
    return f"exactly {most}" if least == most else f"{least} to {most}"


def describe_fields(
    section: Section, cites: bool = False, schema: dict[str, Any] | None = None
) -> str:
    """The fields a section reply must fill, with the bounds `schema` sets.

    A provider that lowers the schema's bounds to fit max_tokens passes its
    fitted schema, so the prompt states the bounds the grammar enforces: told
    the template's bound, a model writes code that the grammar cuts off
    mid-line. The bounds are stated as words and lines to aim at (`AIM`).
    """
    schema = schema if schema is not None else section_model(section, cites).model_json_schema()
    lines = [f"- {p.id} ({p.title}): {_describe(p, schema)}. {p.guidance}" for p in section.parts]
    if cites:
        # Only research runs add this line, so runs without research send the
        # same bytes as before (recorded cassettes keep replaying).
        lines.append(
            "- note_refs: ids of the research notes you used, like R1 (empty list if none)."
        )
    return "\n".join(lines)


def describe_markdown(section: Section, cites: bool = False) -> str:
    """The sub-headings a markdown reply must write, each with what goes under it.

    The template's own bounds, stated as words and lines (`AIM`); the grammar
    holds the reply to looser ones (`markdown_shape`), fitted to the reply limit.
    """
    cases = load_prompt("draft_markdown").cases
    blocks: list[str] = []
    for part in section.parts:
        each = part.max_chars // part.max_items if part.kind in ("list", "table", "tree") else 0
        how = fill(
            cases[part.kind],
            words=str(words_for(each or (INTRO_CHARS if part.kind == "code" else part.max_chars))),
            lines=str(lines_for(part.max_chars)),
            count=_count(part.min_items, part.max_items),
            columns=", ".join(part.columns),
            language=part.language,
        )
        blocks.append(f"### {part.title}\n{how} {part.guidance}")
    blocks.append(fill(cases["refs"], notes=cases["notes"] if cites else "").strip())
    return "\n\n".join(blocks)


def markdown_message(
    template: Template,
    section: Section,
    feature: str,
    *,
    cites: bool = False,
    names: list[str] | None = None,
) -> Message:
    """The section's ask as markdown under its parts' sub-headings (`draft_markdown`)."""
    listed = ", ".join(f"`{n}`" for n in names or [])
    text = fill(
        load_prompt("draft_markdown").user,
        names_note=fill(load_prompt("draft_section").names.strip(), names=listed) if listed else "",
        section_heading=section_heading(template, section),
        doc_name=template.title,
        feature=feature,
        section_guidance=section.guidance.strip(),
        fields=describe_markdown(section, cites),
    )
    return Message(role="user", content=text)


def system_message(
    template: Template, tdd_source: str, tdd_title: str, tdd_text: str, notes: str = ""
) -> Message:
    """The shared prefix: template system text, the TDD, and research notes if any."""
    prompt = load_prompt("draft_section")
    text = fill(
        prompt.system,
        template_system=template.system.strip(),
        tdd_source=attribute(tdd_source),
        tdd_title=attribute(tdd_title),
        tdd_text=fence_safe(tdd_text.strip()),
    )
    if notes:
        text = text.rstrip("\n") + "\n\n" + notes.strip() + "\n"
    return Message(role="system", content=text)


def section_message(
    template: Template,
    section: Section,
    feature: str,
    schema: dict[str, Any],
    *,
    schema_in_text: bool,
    cites: bool = False,
    fitted: dict[str, Any] | None = None,
    names: list[str] | None = None,
) -> Message:
    prompt = load_prompt("draft_section")
    listed = ", ".join(f"`{n}`" for n in names or [])
    text = fill(
        prompt.user,
        names_note=fill(prompt.names.strip(), names=listed) if listed else "",
        section_heading=section_heading(template, section),
        doc_name=template.title,
        feature=feature,
        section_guidance=section.guidance.strip(),
        fields=describe_fields(section, cites, fitted if fitted is not None else schema),
        format_note=format_note(prompt, schema, schema_in_text),
    )
    return Message(role="user", content=text)
