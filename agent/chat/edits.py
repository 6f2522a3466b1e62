"""The document after a chat change: its markdown re-assembled, one section replaced.

Rebuilds a pipeline `Document` the way `generate` would have written it; no
terminal I/O. Must not import the chat's state, commands, session or terminal loop.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.core.records import totals
from agent.core.tdd import Tdd
from agent.core.templates import Template
from agent.draft.plan import SectionDraft
from agent.draft.prompting import load_prompt
from agent.pipeline.generate import Document, document_header, prompt_versions, render_document

REVISE_PROMPT = "revise_instruction"

_DATE = re.compile(r"^(?:\*\*Date:\*\*|> \*\*Version\*\*:.*\*\*Updated\*\*:)\s*(\S+)", re.M)


def assemble_markdown(doc: Document, template: Template, tdd: Tdd, path: Path | None) -> str:
    """The markdown the pipeline would have written for this document at `path`."""
    date = _DATE.search(doc.markdown)
    today = date.group(1) if date else doc.record.started_at[:10]
    header = document_header(template, tdd, path, doc.record.model, today)
    out_dir = path.parent if path is not None else Path.cwd()
    return render_document(template, tdd, header, doc.sections, out_dir, research=doc.research)


def replace_section(doc: Document, template: Template, tdd: Tdd, draft: SectionDraft) -> Document:
    """The document with one section re-drafted: new markdown, record with the new calls."""
    sections = [draft if d.section_id == draft.section_id else d for d in doc.sections]
    calls = [*doc.record.calls, *draft.calls]
    record = doc.record.model_copy(
        update={
            "calls": calls,
            "totals": totals(calls),
            "prompts": {
                **prompt_versions(research=False, review=False),
                **doc.record.prompts,
                REVISE_PROMPT: load_prompt(REVISE_PROMPT).version,
            },
        }
    )
    updated = doc.model_copy(update={"sections": sections, "record": record})
    path = Path(doc.path) if doc.path else None
    return updated.model_copy(update={"markdown": assemble_markdown(updated, template, tdd, path)})
