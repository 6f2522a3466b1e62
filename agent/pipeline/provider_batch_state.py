"""A provider batch's state file: the submitted batch's id and requests, saved before waiting.

A rerun after Ctrl-C, a timeout or a crash reads it to poll the same batch
instead of paying for a second one. Imports `agent.pipeline.provider_batch_jobs`
only, of the pipeline.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.errors import InputError, TidsmithError
from agent.core.files import read_bytes
from agent.core.paths import default_output_path
from agent.core.tdd import load_tdd
from agent.core.templates import Template
from agent.pipeline.provider_batch_jobs import SectionJob

STATE_NAME = "provider-batch.json"


class BatchEntry(BaseModel):
    """What one custom_id stands for."""

    tdd: str = Field(description="the TDD's absolute path")
    section: str
    key: str = Field(
        description="the section's checkpoint key (agent.draft.checkpoint.section_key)"
    )


class ProviderBatchState(BaseModel):
    """The submitted batch, saved before waiting so a rerun resumes polling it."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str
    batch_id: str
    submitted_at: str
    requests: dict[str, BatchEntry] = Field(description="custom_id -> section")


def rerun_hint(state: ProviderBatchState) -> str:
    return (
        f"provider batch {state.batch_id} keeps running at {state.provider}: "
        "run the same command again to resume polling it"
    )


def check_state(
    state: ProviderBatchState,
    path: Path,
    label: str,
    jobs: dict[tuple[str, str], SectionJob],
) -> None:
    """Refuse a state file whose requests are not the ones this run would send."""
    if state.model != label:
        raise InputError(
            f"{path} holds provider batch {state.batch_id} for {state.model}, not {label}; "
            f"rerun with --model {state.model} to collect it, or delete the file to submit anew"
        )
    for custom_id, entry in state.requests.items():
        job = jobs.get((entry.tdd, entry.section))
        if job is None or job.key != entry.key:
            what = "is no longer in the batch" if job is None else "changed"
            raise InputError(
                f"{path} holds provider batch {state.batch_id}, but its request {custom_id} "
                f"({Path(entry.tdd).name}, section {entry.section}) {what} since it was "
                "submitted (TDD, template, prompt or --max-tokens); restore the inputs to "
                "collect it, or delete the file to submit anew"
            )


def state_file(
    paths: list[Path], template: Template, out: Path | None = None, safe_names: bool = False
) -> Path:
    """Where the provider batch's state lives: `.tidsmith/` in the output folder."""
    folder = out if out is not None and out.suffix.lower() != ".md" else None
    for path in paths if folder is None else []:
        try:
            folder = default_output_path(load_tdd(path), template.doc_kind, out, safe_names).parent
            break
        except TidsmithError:
            continue
    if folder is None:
        folder = paths[0].parent if paths else Path.cwd()
    return folder / ".tidsmith" / STATE_NAME


def read_state(path: Path) -> ProviderBatchState | None:
    """The saved state, None when there is none; InputError when it is unreadable."""
    if not path.exists():
        return None
    data = read_bytes(path, 64 * 1024 * 1024, "provider batch state")
    try:
        return ProviderBatchState.model_validate_json(data)
    except ValidationError:
        raise InputError(
            f"{path} is not a provider batch state file; delete it to submit a new batch"
        ) from None


def interrupted_message(
    paths: list[Path], template: Template, out: Path | None = None, safe_names: bool = False
) -> str:
    """The line to print on Ctrl-C while a provider batch is submitted or awaited."""
    try:
        state = read_state(state_file(paths, template, out, safe_names))
    except InputError:
        state = None
    if state is None:
        return "interrupted; no provider batch was recorded as submitted, so a rerun submits one"
    return f"interrupted; {rerun_hint(state)} (it is not cancelled)"
