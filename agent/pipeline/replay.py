"""A run's cassette: the checks before recording or replaying, the session, the metadata.

A replay runs with the model, endpoint and review settings the cassette was
recorded with; a recording goes to a scratch copy that replaces the cassette
only once the run has written its outputs. The vcrpy side lives in
`agent.pipeline.recording`. Imports `options`, `stages` and `recording` only,
of the pipeline.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core import __version__
from agent.core.errors import InputError
from agent.core.files import os_error
from agent.core.records import RunRecord
from agent.core.redact import redact
from agent.core.settings import Settings
from agent.core.tdd import Tdd
from agent.core.templates import Template
from agent.core.write import check_output, write_json_atomic
from agent.pipeline.options import PreparedRun, Recording
from agent.pipeline.recording import (
    CassetteMeta,
    cassette,
    check_cassette,
    meta_path,
    read_meta,
    scratch_path,
)
from agent.pipeline.stages import StageSettings, prompt_versions
from agent.providers.base import Provider

if TYPE_CHECKING:
    from research import ResearchConfig


def replay_settings(
    recording: Recording,
    tdd: Tdd,
    template: Template,
    settings: Settings,
    research: ResearchConfig | None,
) -> tuple[Settings, str]:
    """The settings a replay runs with, and the header date it was recorded with."""
    meta = check_replay(recording.path, tdd, template)
    if meta.research != (research is not None):
        said = "with" if meta.research else "without"
        raise InputError(
            f"cassette {recording.path} was recorded {said} --research; "
            "replay it with the same research flags"
        )
    # Replay the model and endpoint shape the cassette was recorded with,
    # unless the user names them: the request bodies depend on both.
    replayed = settings.model_copy(
        update={
            "model": settings.model or meta.model,
            "base_url": settings.base_url or meta.base_url or None,
            "max_tokens": settings.max_tokens or meta.max_tokens,
            "structured": replay_structured(settings.structured, meta),
            # Review calls are part of the recording (or absent from it).
            "review": meta.review,
            "max_revisions": meta.max_revisions,
            "draft_as": meta.draft_as,
        }
    )
    return replayed, meta.date


def check_recording_target(recording: Recording, force: bool) -> None:
    """Refuse a cassette to record into before any call is paid for."""
    if recording.mode == "new" and recording.path.exists() and not force:
        raise InputError(
            f"cassette {recording.path} exists; pass --force to re-record it, "
            "or --record-mode append"
        )
    # A folder, an input or a bad name is refused before any call is paid for.
    check_output(recording.path, True, "cassette", updates=True)
    check_output(meta_path(recording.path), True, "cassette metadata", updates=True)
    if recording.mode != "new" and recording.path.exists():
        check_cassette(recording.path)


def replay_structured(asked: str, meta: CassetteMeta) -> str:
    """The structured-output mode a replay must use: the one the cassette was recorded with.

    Cassettes from before `--structured` existed did not say; their mode
    followed from the endpoint (a base URL meant a compatible server).
    """
    if asked != "auto":
        return asked
    if meta.structured:
        return meta.structured
    vendor = meta.model.partition(":")[0]
    if meta.base_url and vendor == "openai":
        return "json-schema"
    if meta.base_url and vendor == "anthropic":
        return "schema-in-prompt"
    return "auto"


def check_replay(cassette_path: Path, tdd: Tdd, template: Template) -> CassetteMeta:
    """The cassette's metadata, after checking it can replay this run."""
    if not cassette_path.exists():
        raise InputError(
            f"cassette {cassette_path} does not exist; "
            f"record it first with --record {cassette_path}"
        )
    check_cassette(cassette_path)
    meta = read_meta(cassette_path)
    now = prompt_versions()
    stale = {k: v for k, v in meta.prompts.items() if now.get(k) != v}
    if stale:
        which = ", ".join(f"{k} v{v} (now v{now.get(k)})" for k, v in stale.items())
        raise InputError(f"cassette {cassette_path} was recorded with prompt {which}; re-record it")
    if (meta.template, meta.template_version) != (template.name, template.version):
        raise InputError(
            f"cassette {cassette_path} was recorded with template {meta.template} "
            f"{meta.template_version}, not {template.name} {template.version}; pass --template "
            f"{meta.template} or re-record"
        )
    if meta.tdd_sha256 != tdd.sha256:
        raise InputError(
            f"cassette {cassette_path} was recorded from a different TDD (sha256 "
            f"{meta.tdd_sha256[:12]}…, this one {tdd.sha256[:12]}…); re-record it"
        )
    return meta


@contextmanager
def recording_session(recording: Recording | None) -> Iterator[Any]:
    """Replay the cassette, or record into a hidden scratch copy of it.

    Every record mode records into the scratch file; `commit_recording` moves
    it into place once the run has written its outputs. A failed run removes
    it, so no mode leaves the cassette of a failed run (which would hold the
    error, and replay it for ever). Yields vcrpy's cassette (None: no recording).
    """
    if recording is None:
        yield None
        return
    if recording.mode == "replay":
        with cassette(recording.path, "replay") as replayed:
            yield replayed
        return
    target = recording.path
    scratch = scratch_path(target)
    scratch.unlink(missing_ok=True)
    try:
        if recording.mode != "new" and target.exists():
            # once/append start from the cassette as it is; it changes only on success.
            check_cassette(target)
            shutil.copyfile(target, scratch)
        with cassette(scratch, recording.mode) as recorded:
            yield recorded
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


def cassette_meta(
    run: PreparedRun,
    record: RunRecord,
    provider: Provider,
    stage: StageSettings,
    interactions: int,
) -> CassetteMeta:
    """What produced a recording, so a replay can check it and send the same requests."""
    return CassetteMeta(
        tool_version=__version__,
        model=record.model,
        template=run.template.name,
        template_version=run.template.version,
        # Only the prompts its calls used: a prompt the run did not call (no code
        # to write, no research) can change without the cassette going stale. A
        # replay that now makes a call the cassette lacks fails on that request.
        prompts={c.prompt_id: c.prompt_version for c in record.calls if c.prompt_id},
        tdd_sha256=run.tdd.sha256,
        date=run.today,
        base_url=redact(run.settings.base_url or ""),
        structured=str(getattr(provider, "structured", "") or ""),
        max_tokens=stage.max_tokens,
        recorded_wall_s=record.wall_s,
        interactions=interactions,
        research=record.research is not None,
        review=stage.review,
        max_revisions=stage.revisions,
        draft_as=stage.draft_as,
    )


def discard_recording(recording: Recording) -> None:
    """Remove the scratch recording of a run that failed after its calls."""
    scratch_path(recording.path).unlink(missing_ok=True)


def commit_recording(recording: Recording, meta: CassetteMeta, force: bool) -> None:
    """Move a successful run's recording into place, then write its metadata."""
    try:
        scratch = scratch_path(recording.path)
        if scratch.exists():
            updates = recording.mode != "new"
            check_output(recording.path, force or updates, "cassette", updates=updates)
            try:
                scratch.replace(recording.path)
            except OSError as e:
                raise os_error(recording.path, e, "cassette") from None
        write_json_atomic(meta_path(recording.path), meta)
    finally:
        discard_recording(recording)
