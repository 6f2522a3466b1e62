"""Assemble: section models → markdown, in template order. Code only, no LLM.

Imports `agent.core` only (no provider, no stage).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from agent.core.diagram import Diagram, render_markdown
from agent.core.filetree import draw_tree
from agent.core.markup import safe_prose
from agent.core.templates import Part, Section, Template, column_keys, opens_not_applicable


class DocumentHeader(BaseModel):
    """What the header block states about a document."""

    title: str
    doc_id: str
    source_tdd: str
    source_link: str
    template: str
    template_version: str
    model: str
    date: str


class RelatedDoc(BaseModel):
    text: str
    target: str


def code_fence(code: str) -> str:
    """A backtick fence longer than any backtick run inside the code."""
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    return "`" * max(3, longest + 1)


_INNER_FENCE = re.compile(r"^\s*(`{3,}|~{3,})[\w+-]*[ \t]*\n(.*?)(?:\n\1\s*)?$", re.DOTALL)


def unfence(code: str) -> str:
    """Code without a fence the model wrapped it in (we add our own)."""
    match = _INNER_FENCE.match(code)
    return match.group(2) if match else code


def _cell(value: Any) -> str:
    text = safe_prose(" ".join(str(value).split()))
    return text.replace("|", "\\|") or " "


def render_part(part: Part, value: Any) -> str:
    """One part's content as markdown; prose from the model loses raw HTML and unsafe links."""
    if part.kind == "text":
        return safe_prose(str(value).strip())
    if part.kind == "list":
        items = [safe_prose(" ".join(str(item).split())) for item in value]
        # "Not applicable: <reason>" alone is the section's answer, not an item of it.
        if len(items) == 1 and opens_not_applicable(items[0]):
            return items[0]
        return "\n".join(f"- {item}" for item in items)
    if part.kind == "code":
        intro = safe_prose(str(value.get("intro", "")).strip())
        path = str(value.get("path", "")).strip().replace("`", "'")
        code = unfence(str(value.get("code", ""))).strip("\n")
        fence = code_fence(code)
        paragraphs = [intro] if intro else []
        dropped = str(value.get("dropped", "")).strip()
        if dropped:
            # Drafting left out code that did not parse: say so, never ship it broken.
            return "\n\n".join([*paragraphs, f"> **Note:** {dropped}"])
        if path:
            # A paragraph of its own: written on the line under the intro,
            # markdown ran the two together ("... as follows: File: relay/worker.py").
            paragraphs.append(f"File: `{path}`")
        return "\n\n".join([*paragraphs, f"{fence}{part.language}\n{code}\n{fence}"])
    if part.kind == "diagram":
        return render_markdown(Diagram.model_validate(value))
    if part.kind == "tree":
        tree = draw_tree(value)
        if not tree:
            return f"> **Note:** The model named no file paths for {part.title}."
        fence = code_fence(tree)
        return f"{fence}text\n{tree}\n{fence}"
    keys = column_keys(part)
    head = "| " + " | ".join(part.columns) + " |"
    rule = "|" + "|".join("---" for _ in part.columns) + "|"
    rows = ["| " + " | ".join(_cell(row.get(k, "")) for k in keys) + " |" for row in value]
    return "\n".join([head, rule, *rows])


def render_section(template: Template, section: Section, content: dict[str, Any]) -> str:
    number = template.number(section.id)
    heading = f"## {number}. {section.title}" if number is not None else f"## {section.title}"
    blocks = [heading]
    for part in section.parts:
        body = render_part(part, content[part.id])
        # A section with a single part needs no sub-heading repeating its title.
        if len(section.parts) > 1:
            blocks.append(f"### {part.title}")
        blocks.append(body)
    return "\n\n".join(blocks)


def render_header(template: Template, header: DocumentHeader) -> str:
    if template.header == "spec":
        return "\n".join(
            [
                f"# {header.title}",
                "",
                "> **Status**: Draft",
                f"> **Version**: 1.0 | **Updated**: {header.date}",
                f"> **Source TDD**: [{header.source_tdd}]({header.source_link})"
                f" | **Template**: {header.template} {header.template_version}"
                f" | **Model**: {header.model}",
            ]
        )
    return "\n".join(
        [
            f"# {header.title}",
            "",
            f"**Document ID:** {header.doc_id}  ",
            f"**Source TDD:** [{header.source_tdd}]({header.source_link})  ",
            f"**Template:** {header.template} {header.template_version}  ",
            f"**Model:** {header.model}  ",
            f"**Date:** {header.date}",
            "",
            "---",
        ]
    )


def assemble(
    template: Template,
    header: DocumentHeader,
    contents: dict[str, dict[str, Any]],
    related: list[RelatedDoc] | None = None,
    appendices: list[str] | None = None,
) -> str:
    """The whole document: header, every section in template order, then appendices.

    Appendices are complete markdown blocks (References, Review) built by the
    stages that own them.
    """
    blocks = [render_header(template, header)]
    missing = [s.id for s in template.sections if s.id not in contents]
    if missing:
        raise ValueError(f"cannot assemble: no content for sections {missing}")
    blocks.extend(render_section(template, s, contents[s.id]) for s in template.sections)
    if template.header == "spec":
        links = [f"- [{header.source_tdd}]({header.source_link}) (source TDD)"]
        links.extend(f"- [{r.text}]({r.target})" for r in related or [])
        blocks.append("## Related Documents\n\n" + "\n".join(links))
    blocks.extend(a.strip() for a in appendices or [] if a.strip())
    return "\n\n".join(blocks).rstrip() + "\n"
