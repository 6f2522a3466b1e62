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
from agent.core.templates import Section, Template, section_heading
from agent.providers.base import Message
from agent.providers.grammar import fitted_length

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


def describe_fields(section: Section, cites: bool = False, fit: float = 1.0) -> str:
    """The fields a section reply must fill; `fit` scales the character bounds.

    A provider that lowers the schema's bounds to fit max_tokens
    (`fit_schema`) passes its ratio, so the prompt states the bound the
    grammar enforces: told the template's bound, a model writes code that the
    grammar cuts off mid-line.
    """
    lines: list[str] = []
    for part in section.parts:
        limit = fitted_length(part.max_chars, fit)
        if part.kind == "text":
            shape = f"markdown text, at most {limit} characters"
        elif part.kind == "list":
            shape = f"a list of 1 to {part.max_items} short items"
        elif part.kind == "code":
            shape = (
                f"an object with intro (1-2 sentences), path (file path or empty) and code "
                f"({part.language} only, at most {limit} characters)"
            )
        elif part.kind == "diagram":
            shape = (
                f"an object with components (1 to {part.max_items}, each a name and a "
                "responsibility) and edges (each a source and target component name and a label)"
            )
        else:
            cols = ", ".join(part.columns)
            shape = f"a table: a list of 1 to {part.max_items} rows with columns {cols}"
        lines.append(f"- {part.id} ({part.title}): {shape}. {part.guidance}")
    if cites:
        # Only research runs add this line, so runs without research send the
        # same bytes as before (recorded cassettes keep replaying).
        lines.append(
            "- note_refs: ids of the research notes you used, like R1 (empty list if none)."
        )
    return "\n".join(lines)


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
    fit: float = 1.0,
) -> Message:
    prompt = load_prompt("draft_section")
    text = fill(
        prompt.user,
        section_heading=section_heading(template, section),
        doc_name=template.title,
        feature=feature,
        section_guidance=section.guidance.strip(),
        fields=describe_fields(section, cites, fit),
        format_note=format_note(prompt, schema, schema_in_text),
    )
    return Message(role="user", content=text)
