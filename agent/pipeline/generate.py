"""A generate run, read as the pipeline: the one place that knows the order of stages.

prepare (and check a replay) → research → plan → draft → review and revise →
assemble → record → write; each stage is a function of its own module in
`agent.pipeline`. Also the library entry points `generate` and `agenerate`.
Imports the stages below it; only front ends (and batch runs) import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agent.core.errors import ConfigError
from agent.core.records import Event, Progress, RunRecord, quiet
from agent.core.settings import Settings
from agent.core.templates import Template, get_template
from agent.draft.checkpoint import SectionCheckpoint, checkpoint_folder
from agent.draft.plan import SectionDraft
from agent.pipeline.ledger import Ledger
from agent.pipeline.options import GenerateOptions, PreparedRun, Recording
from agent.pipeline.outputs import (
    document_header,
    render_document,
    write_outputs,
)
from agent.pipeline.prepare import prepare_run
from agent.pipeline.record import RunClock, record_failure, run_record
from agent.pipeline.replay import (
    cassette_meta,
    commit_recording,
    discard_recording,
    recording_session,
)
from agent.pipeline.stages import (
    ReviewMode,
    StageResults,
    StageSettings,
    draft_plan,
    prompt_versions,
    run_stages,
)
from agent.providers import open_configured
from agent.providers.base import Provider
from agent.update.state import build_state
from research import ResearchConfig

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

__all__ = [
    "Document",
    "Recording",
    "ReviewMode",
    "agenerate",
    "document_header",
    "draft_plan",
    "generate",
    "generate_document",
    "prompt_versions",
    "render_document",
    "run_generate",
]


class Document(BaseModel):
    """The result of a run: the markdown, its section models and the record."""

    markdown: str
    sections: list[SectionDraft]
    record: RunRecord
    path: str | None = None
    review: Any = Field(default=None, description="the ReviewReport, when review ran")
    research: Any = Field(default=None, description="the ResearchResult, when research ran")


async def run_generate(
    tdd_path: Path,
    *,
    settings: Settings,
    provider: Provider | None = None,
    template: Template | None = None,
    out: Path | None = None,
    force: bool = False,
    safe_names: bool = False,
    write: bool = True,
    today: str | None = None,
    recording: Recording | None = None,
    on_event: Progress | None = None,
    checkpoint: SectionCheckpoint | None = None,
    research: ResearchConfig | None = None,
    retrievers: Sequence[BaseRetriever] = (),
    review_appendix: bool = False,
    deadline: float | None = None,
) -> Document:
    """Run the whole pipeline for one TDD. Opens (and closes) a provider if none is given.

    load → research (when `research` is given) → plan → draft → review and
    revise (per `settings.review`) → assemble → write. `deadline` bounds the
    model calls in seconds. A run that fails writes its run record anyway
    (status failed, every call made, cost so far), and the exception carries it
    as `run_record`.
    """
    options = GenerateOptions(
        settings=settings,
        provider=provider,
        template=template,
        out=out,
        force=force,
        safe_names=safe_names,
        write=write,
        today=today,
        recording=recording,
        on_event=on_event,
        checkpoint=checkpoint,
        research=research,
        retrievers=retrievers,
        review_appendix=review_appendix,
        deadline=deadline,
    )
    return await generate_document(tdd_path, options)


async def generate_document(tdd_path: Path, options: GenerateOptions) -> Document:
    """`run_generate` with its options in one value: the pipeline, stage by stage."""
    emit: Progress = options.on_event or quiet
    clock = RunClock.start()
    run = await prepare_run(tdd_path, options)
    checkpoint, checkpoint_to_clear = _section_checkpoint(run, options.checkpoint)
    with recording_session(run.recording) as session:
        async with _provider_for(run, options.provider, emit) as provider:
            stage = StageSettings.resolve(run.settings, provider)
            results = await _model_stages(run, provider, stage, checkpoint, options, emit, clock)
        interactions = len(session) if session is not None else 0
    markdown = render_document(
        run.template,
        run.tdd,
        results.header,
        results.drafts,
        run.out_dir,
        research=results.research,
        review=results.review if options.review_appendix else None,
    )
    record = run_record(run, provider, results, stage, clock)
    meta = cassette_meta(run, record, provider, stage, interactions) if run.records else None
    if run.path is not None:
        await _write(run.path, run, markdown, record, results, options.force)
    if run.recording is not None and meta is not None:
        commit_recording(run.recording, meta, options.force)
    if checkpoint_to_clear is not None:
        checkpoint_to_clear.clear()
    return Document(
        markdown=markdown,
        sections=results.drafts,
        record=record,
        path=str(run.path) if run.path else None,
        review=results.review,
        research=results.research,
    )


def _section_checkpoint(
    run: PreparedRun, given: SectionCheckpoint | None
) -> tuple[SectionCheckpoint | None, SectionCheckpoint | None]:
    """The checkpoint the drafts go to, and the same one again when this run owns it."""
    if given is None and run.path is not None and run.recording is None:
        # Like batch: every validated section is saved, so a rerun after a failure
        # or Ctrl-C asks only for the sections that are missing.
        made = SectionCheckpoint(checkpoint_folder(run.path))
        return made, made
    return given, None


@asynccontextmanager
async def _provider_for(
    run: PreparedRun, given: Provider | None, emit: Progress
) -> AsyncIterator[Provider]:
    """The provider given, or one opened for this run and closed after it."""
    if given is not None:
        yield given
        return
    settings = run.settings
    provider = await open_configured(
        settings,
        replay=run.replay,
        progress=lambda msg: emit(Event(kind="info", detail=msg)),
    )
    try:
        yield provider
    finally:
        await provider.aclose()


async def _model_stages(
    run: PreparedRun,
    provider: Provider,
    stage: StageSettings,
    checkpoint: SectionCheckpoint | None,
    options: GenerateOptions,
    emit: Progress,
    clock: RunClock,
) -> StageResults:
    """The stages that call the model, within the deadline; a failure saves its record."""
    # Every call is recorded as it returns: a run that fails still says what it spent.
    ledger = Ledger(provider)
    try:
        async with asyncio.timeout(options.deadline):
            return await run_stages(
                run,
                ledger,
                stage,
                retrievers=options.retrievers,
                checkpoint=checkpoint,
                emit=emit,
            )
    except BaseException as e:
        late = record_failure(e, ledger, run, clock, options.deadline)
        if late is not None:
            raise late from e
        raise


async def _write(
    path: Path,
    run: PreparedRun,
    markdown: str,
    record: RunRecord,
    results: StageResults,
    force: bool,
) -> None:
    """Write the document to `path` and the files beside it; a failed write drops the recording."""
    state = build_state(run.template, run.tdd, results.drafts, record.model, path)
    try:
        # Each write ends in an fsync (milliseconds); in a batch that would stall
        # every other document's calls on this event loop, so it runs in a thread.
        await asyncio.to_thread(
            write_outputs, path, markdown, record, results.drafts, results.review, force, state
        )
    except BaseException:
        if run.records and run.recording is not None:
            discard_recording(run.recording)
        raise


def generate(tdd: str | Path, **options: Any) -> Document:
    """Generate a TID or Spec from a TDD file. The library's main entry point.

    Takes the same options as `agenerate`, which documents them.
    """
    return asyncio.run(agenerate(tdd, **options))


async def agenerate(
    tdd: str | Path,
    *,
    template: str | Template = "tid",
    model: str | Any | None = None,
    out: str | Path | None = None,
    force: bool = False,
    write: bool = True,
    settings: Settings | None = None,
    on_event: Callable[[Event], None] | None = None,
    research: ResearchConfig | bool = False,
    retrievers: Sequence[BaseRetriever] = (),
    review_appendix: bool = False,
) -> Document:
    """Generate a TID or Spec from a TDD file (async).

    Args:
        tdd: path to the TDD markdown file.
        template: `tid`, `spec`, a path to a template YAML, or a Template.
        model: a `provider:model` id, a Provider, or a LangChain chat model object.
        out: output file or folder; default follows the `0xcc/tids/` convention.
        force: overwrite an existing output file.
        write: False returns the document without writing anything.
        settings: the remaining settings (concurrency, max_tokens, review, ...).
        on_event: called with progress events.
        research: True (related documents only) or a ResearchConfig: research first.
        retrievers: LangChain retrievers to search too (implies research).
        review_appendix: add a Review section to the document.
    """
    settings = settings or Settings()
    provider: Provider | None = None
    if isinstance(template, str):
        template = get_template(template)
    if isinstance(model, str):
        settings = settings.model_copy(update={"model": model})
    elif model is not None:
        provider = _as_provider(model)
    config: ResearchConfig | None = None
    if isinstance(research, bool):
        if research or retrievers:
            config = ResearchConfig()
    else:
        config = research
    return await run_generate(
        Path(tdd),
        settings=settings,
        provider=provider,
        template=template,
        out=Path(out) if out is not None else None,
        force=force,
        write=write,
        on_event=on_event,
        research=config,
        retrievers=retrievers,
        review_appendix=review_appendix,
    )


def _as_provider(model: Any) -> Provider:
    if isinstance(model, Provider):
        return model
    if hasattr(model, "ainvoke"):
        # Lazy: the LangChain adapter imports langchain_core, which only its users need.
        from agent.providers.langchain import LangChainProvider

        return LangChainProvider(model)
    raise ConfigError(
        "model must be a provider:model id, a Provider or a LangChain chat model, "
        f"not {type(model).__name__}"
    )
