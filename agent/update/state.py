"""What `tidsmith update` needs, saved beside the run record when a document is written.

`.tidsmith/<name>.update.json` holds the template and model, the TDD as it
was (its text, and its heading tree with a hash per heading) and, for each
section, the hash of the markdown it was rendered to and the TDD headings it
drew on (`tdd_refs`). A section whose text no longer has that hash was
edited by hand after generation.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from agent.core.tdd import Tdd
from agent.core.templates import Template, builtin_names
from agent.document.assemble import render_section
from agent.draft.plan import SectionDraft


class HeadingState(BaseModel):
    title: str
    level: int
    sha256: str = Field(description="of the heading's own text, up to the next heading")


class SectionState(BaseModel):
    sha256: str = Field(description="of the section's markdown as rendered")
    tdd_refs: list[str] = Field(default_factory=list)


class UpdateState(BaseModel):
    format: int = 1
    template: str = Field(description="a built-in template's name, or the template file's path")
    template_version: str
    model: str
    tdd_path: str = Field(description="relative to the document's folder when possible")
    tdd_sha256: str
    tdd_text: str
    headings: list[HeadingState]
    sections: dict[str, SectionState]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def heading_states(tdd: Tdd) -> list[HeadingState]:
    return [
        HeadingState(title=h.title, level=h.level, sha256=text_hash(h.text)) for h in tdd.headings
    ]


def state_path(doc: Path) -> Path:
    return doc.parent / ".tidsmith" / f"{doc.stem}.update.json"


def template_ref(template: Template) -> str:
    """What `get_template` takes to load this template again."""
    source = Path(template.source) if template.source else None
    if source is None or (
        source.stem in builtin_names()
        and source.parent.name == "templates"
        and source.parent.parent.name == "prompts"
    ):
        return template.name
    return str(source.resolve())


def build_state(
    template: Template, tdd: Tdd, drafts: list[SectionDraft], model: str, doc: Path
) -> UpdateState:
    """The state of a document just written to `doc`."""
    by_id = {s.id: s for s in template.sections}
    sections = {
        d.section_id: SectionState(
            sha256=text_hash(render_section(template, by_id[d.section_id], d.content)),
            tdd_refs=d.tdd_refs,
        )
        for d in drafts
        if d.section_id in by_id
    }
    try:
        rel = Path(os.path.relpath(Path(tdd.path).resolve(), doc.parent.resolve()))
    except ValueError:  # another drive on Windows
        rel = Path(tdd.path).resolve()
    return UpdateState(
        template=template_ref(template),
        template_version=template.version,
        model=model,
        tdd_path=rel.as_posix(),
        tdd_sha256=tdd.sha256,
        tdd_text=tdd.text,
        headings=heading_states(tdd),
        sections=sections,
    )


def load_state(doc: Path) -> UpdateState | None:
    path = state_path(doc)
    if not path.is_file():
        return None
    try:
        return UpdateState.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None
