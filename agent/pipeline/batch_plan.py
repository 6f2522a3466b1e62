"""Which TDDs a batch drafts: finding them, their output paths, and what is up to date.

Imports `agent.pipeline.stages` only, of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from agent.core.errors import InputError, TidsmithError
from agent.core.files import os_error, read_bytes
from agent.core.paths import default_output_path, run_record_path
from agent.core.records import RunRecord
from agent.core.redact import clean
from agent.core.tdd import Tdd, load_tdd
from agent.core.templates import Template
from agent.pipeline.stages import prompt_versions
from agent.providers import default_model_id, parse_model_id
from agent.providers.local import replay_identity

# The 0xcc convention: `001_FTDD|Name.md`, `000_PTDD|Name.md`.
DEFAULT_GLOB = "[0-9]*TDD*.md"


def find_tdds(folder: Path, glob: str | None = None) -> list[Path]:
    """The TDDs in `folder`, sorted; with no glob, the naming convention, else any `*.md`."""
    try:
        is_dir = folder.is_dir()
    except OSError as e:
        raise os_error(folder, e, "folder") from None
    if not is_dir:
        raise InputError(f"{folder} is not a folder; pass the folder that holds the TDDs")
    if glob is not None:
        tdds = sorted(p for p in folder.glob(glob) if p.is_file())
        if not tdds:
            raise InputError(f"no files in {folder} match {glob!r}; check --glob")
        return tdds
    tdds = sorted(p for p in folder.glob(DEFAULT_GLOB) if p.is_file())
    tdds = tdds or sorted(p for p in folder.glob("*.md") if p.is_file())
    if not tdds:
        raise InputError(f"no TDDs (*.md files) in {folder}; pass another folder or --glob")
    return tdds


def expected_model_label(model_id: str | None) -> str:
    """The `provider:model` a run record will name, without opening the provider."""
    provider, name = parse_model_id(model_id or default_model_id())
    if provider == "local":
        return f"local:{replay_identity(name or 'local')[0]}"
    return f"{provider}:{name or provider}"


def is_current(output: Path, tdd: Tdd, template: Template, model: str) -> bool:
    """Whether `output` was made from this TDD, template and model (its run record says so)."""
    record_path = run_record_path(output)
    if not output.is_file() or not record_path.is_file():
        return False
    try:
        record = RunRecord.model_validate_json(read_bytes(record_path, 64 * 1024 * 1024))
    except (TidsmithError, ValidationError):
        return False
    return (
        record.tdd_sha256 == tdd.sha256
        and (record.template, record.template_version) == (template.name, template.version)
        and record.model == model
        # Every prompt the document was made with is still the current version.
        and _current(record.prompts)
    )


def _current(used: dict[str, str]) -> bool:
    now = prompt_versions()
    return all(now.get(k) == v for k, v in used.items())


@dataclass(frozen=True)
class Planned:
    """What a batch does with one TDD: draft it (tdd and output set), or why not."""

    path: Path
    tdd: Tdd | None = None
    output: Path | None = None
    verdict: Literal["draft", "skipped", "failed"] = "draft"
    reason: str = ""


def plan_documents(
    paths: list[Path],
    template: Template,
    *,
    out: Path | None = None,
    force: bool = False,
    safe_names: bool = False,
    resume: bool = True,
    model_label: str | None = None,
) -> list[Planned]:
    """Each TDD's output path and whether it is drafted, skipped or failed.

    An existing document is skipped when it is up to date for `model_label`
    (with `resume`), else it fails unless `force`. With no `model_label`, an
    existing document is never taken as up to date.
    """
    planned: list[Planned] = []
    claimed: dict[Path, str] = {}
    for path in paths:
        try:
            tdd = load_tdd(path)
            output = default_output_path(tdd, template.doc_kind, out, safe_names)
            if tdd.number is None:
                # The next free number may be an earlier unnumbered TDD's of this batch
                # (nothing is written yet): take the one after the highest claimed.
                used = [
                    int(n)
                    for o in claimed
                    if o.parent == output.parent
                    for n in [o.name.split("_", 1)[0]]
                    if n.isdigit()
                ]
                mine = int(output.name.split("_", 1)[0])
                if used and mine <= max(used):
                    numbered = tdd.model_copy(update={"number": f"{max(used) + 1:03d}"})
                    output = default_output_path(numbered, template.doc_kind, out, safe_names)
        except TidsmithError as e:
            planned.append(Planned(path, verdict="failed", reason=clean(str(e))))
            continue
        if output in claimed:
            # Two unnumbered TDDs can be given the same next free number.
            why = f"would write {output.name}, as {claimed[output]} does; number the TDD"
            planned.append(Planned(path, output=output, verdict="failed", reason=why))
            continue
        claimed[output] = path.name
        if output.exists() and not force:
            if resume and model_label and is_current(output, tdd, template, model_label):
                planned.append(Planned(path, output=output, verdict="skipped", reason="up to date"))
            else:
                why = (
                    f"{output.name} exists but was made from another TDD, template or model; "
                    "pass --force to replace it"
                )
                planned.append(Planned(path, output=output, verdict="failed", reason=why))
            continue
        planned.append(Planned(path, tdd=tdd, output=output))
    return planned
