"""Section checkpoints: every validated section saved as it completes, so a rerun resumes.

A checkpoint is keyed by everything that shapes the section's request: the
model, the reply limit, the prompt and template versions, the section's
schema and the exact messages (which hold the TDD text, so an edited TDD
never reuses an old draft). One JSON file per section, written atomically,
in a folder beside the documents: `<out>/.tidsmith/checkpoints/<doc stem>/`.
Imports core, providers, the plan and the prompt files; never the calls, a
later stage or a front end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.core.errors import InputError
from agent.core.files import read_bytes
from agent.core.templates import Section, Template
from agent.core.write import write_bytes_atomic
from agent.draft.plan import PROMPT_ID, DraftPlan, SectionDraft, section_schema
from agent.draft.prompting import load_prompt
from agent.providers.base import Message, Provider

# One section's model: bounded strings and lists keep it far below this.
MAX_CHECKPOINT_BYTES = 4 * 1024 * 1024


class _Saved(BaseModel):
    key: str
    draft: SectionDraft


def section_key(
    *,
    model: str,
    max_tokens: int,
    prompt: str,
    template: str,
    section_id: str,
    schema: dict[str, Any],
    messages: list[Message],
) -> str:
    """A sha256 over what the section's request depends on."""
    material = {
        "model": model,
        "max_tokens": max_tokens,
        "prompt": prompt,
        "template": template,
        "section": section_id,
        "schema": schema,
        "messages": [m.model_dump() for m in messages],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def draft_key(
    provider: Provider, template: Template, section: Section, plan: DraftPlan, max_tokens: int
) -> str:
    """The key a section's draft is saved and looked up under (live and provider batch)."""
    return section_key(
        model=f"{provider.name}:{provider.model}",
        max_tokens=max_tokens,
        prompt=f"{PROMPT_ID} {load_prompt(PROMPT_ID).version}",
        template=f"{template.name} {template.version}",
        section_id=section.id,
        schema=section_schema(section, plan.cites)[1],
        messages=plan.requests[section.id],
    )


class SectionCheckpoint:
    """Completed sections of one document, loaded and saved by `draft_all`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.loaded = 0
        self.saved = 0

    def _path(self, section_id: str) -> Path:
        return self.folder / f"{section_id}.json"

    def load(self, section_id: str, key: str) -> SectionDraft | None:
        """The saved draft if it was made from the same request, else None."""
        path = self._path(section_id)
        try:
            saved = _Saved.model_validate_json(read_bytes(path, MAX_CHECKPOINT_BYTES, "checkpoint"))
        except (InputError, ValidationError):
            # Missing or unreadable (a crash mid-write cannot leave one: writes are atomic).
            return None
        if saved.key != key or saved.draft.section_id != section_id:
            return None
        self.loaded += 1
        return saved.draft

    def save(self, key: str, draft: SectionDraft) -> None:
        # A rename keeps a crash from leaving half a file. No fsync: this runs on the
        # event loop once per section, and a checkpoint lost to a power cut only
        # costs one request on the rerun.
        # A failed write (disk full, file too large) is one InputError line and
        # leaves no temp file; the batch fails that document only.
        data = _Saved(key=key, draft=draft).model_dump_json().encode()
        write_bytes_atomic(
            self._path(draft.section_id), data, force=True, fsync=False, updates=True
        )
        self.saved += 1

    def clear(self) -> None:
        """Drop the folder once the document is written: the document is the checkpoint now."""
        shutil.rmtree(self.folder, ignore_errors=True)


def checkpoint_folder(output: Path) -> Path:
    """Where a document's section checkpoints live, beside its run record."""
    return output.parent / ".tidsmith" / "checkpoints" / output.stem
