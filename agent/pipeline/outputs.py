"""A run's outputs: the document's header, its markdown, and the files written beside it.

Turns drafted sections into the document (via `agent.document.assemble`) and
writes the document, its run record, update state, section models and review.
Imports no other module of `agent.pipeline`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from agent.core.paths import run_record_path
from agent.core.records import RunRecord
from agent.core.tdd import Tdd
from agent.core.templates import Template
from agent.core.write import write_atomic, write_json_atomic
from agent.document.assemble import DocumentHeader, RelatedDoc, assemble
from agent.draft.plan import SectionDraft
from agent.notes.run import references_markdown
from agent.review import ReviewReport, review_appendix

if TYPE_CHECKING:
    from research import ResearchResult


def relative_link(target: Path, start: Path) -> str:
    """A link from a document in `start` to `target`, portable across machines."""
    try:
        return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return target.resolve().as_posix()


def related_docs(tdd: Tdd, out_dir: Path) -> list[RelatedDoc]:
    """The TDD's own links, re-pointed relative to the output folder."""
    docs: list[RelatedDoc] = []
    base = Path(tdd.path).parent
    for link in tdd.links:
        if link.kind == "other" or "://" in link.target:
            continue
        docs.append(RelatedDoc(text=link.text, target=relative_link(base / link.target, out_dir)))
    return docs


def render_document(
    template: Template,
    tdd: Tdd,
    header: DocumentHeader,
    drafts: list[SectionDraft],
    out_dir: Path,
    *,
    research: ResearchResult | None = None,
    review: ReviewReport | None = None,
) -> str:
    """The markdown: sections, related documents, References (with research), Review (if given)."""
    appendices: list[str] = []
    if research is not None and research.notes:
        cited = {r for d in drafts for r in d.note_refs}
        appendices.append(references_markdown(research, cited, out_dir))
    if review is not None:
        appendices.append(review_appendix(review))
    contents = {d.section_id: d.content for d in drafts}
    return assemble(template, header, contents, related_docs(tdd, out_dir), appendices)


def document_header(
    template: Template, tdd: Tdd, path: Path | None, model: str, today: str
) -> DocumentHeader:
    """The header block of a document written to `path` (None: not written)."""
    out_dir = path.parent if path is not None else Path.cwd()
    return DocumentHeader(
        title=template.doc_title.replace("{feature}", tdd.feature),
        doc_id=path.stem if path is not None else f"{tdd.number or '000'}_F{template.doc_kind}",
        source_tdd=Path(tdd.path).stem,
        source_link=relative_link(Path(tdd.path), out_dir),
        template=template.name,
        template_version=template.version,
        model=model,
        date=today,
    )


def write_outputs(
    path: Path,
    markdown: str,
    record: RunRecord,
    drafts: list[SectionDraft],
    report: ReviewReport | None,
    force: bool,
    update_state: BaseModel | None = None,
) -> None:
    """The document, its run record and the JSON beside it (each write ends in an fsync)."""
    write_atomic(path, markdown, force=force)
    write_json_atomic(run_record_path(path), record)
    if update_state is not None:
        # What `tidsmith update` needs: the TDD's heading tree, each section's hash.
        write_json_atomic(run_record_path(path).with_name(f"{path.stem}.update.json"), update_state)
    # The validated section models: what assemble turned into the document.
    write_json_atomic(
        run_record_path(path).with_name(f"{path.stem}.sections.json"),
        {d.section_id: d.content for d in drafts},
    )
    if report is not None:
        write_json_atomic(run_record_path(path).with_name(f"{path.stem}.review.json"), report)
