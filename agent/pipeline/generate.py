"""The only module that knows the order of stages.

load → research (Option B) → plan → draft (one call per section,
concurrent) → review and revise → assemble → write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from agent.core import __version__
from agent.core.errors import ConfigError, InputError, TidsmithError
from agent.core.files import os_error
from agent.core.paths import default_output_path, run_record_path
from agent.core.records import CallRecord, Event, Progress, RunRecord, totals
from agent.core.redact import redact
from agent.core.settings import Settings
from agent.core.tdd import Tdd, load_tdd, require_body
from agent.core.templates import Section, Template, get_template
from agent.core.write import check_output, write_atomic, write_json_atomic
from agent.document.assemble import DocumentHeader, RelatedDoc, assemble
from agent.draft.checkpoint import SectionCheckpoint, checkpoint_folder
from agent.draft.plan import DraftPlan, SectionDraft, plan_messages
from agent.draft.prompting import load_prompt
from agent.draft.sections import draft_all
from agent.pipeline.ledger import Ledger
from agent.pipeline.recording import (
    CassetteMeta,
    cassette,
    check_cassette,
    meta_path,
    read_meta,
    scratch_path,
)
from agent.providers import open_provider, provider_default_max_tokens
from agent.providers.base import Provider

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

    from agent.review import ReviewReport
    from research import ResearchConfig, ResearchResult


log = logging.getLogger(__name__)


class Document(BaseModel):
    """The result of a run: the markdown, its section models and the record."""

    markdown: str
    sections: list[SectionDraft]
    record: RunRecord
    path: str | None = None
    review: Any = Field(default=None, description="the ReviewReport, when review ran")
    research: Any = Field(default=None, description="the ResearchResult, when research ran")


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


def _model_label(provider: Provider) -> str:
    return f"{provider.name}:{provider.model}"


class Recording(BaseModel):
    """Record this run's HTTP into a cassette, or replay one with no network."""

    path: Path
    mode: Literal["new", "once", "append", "replay"] = "new"


def _write_outputs(
    path: Path,
    markdown: str,
    record: RunRecord,
    drafts: list[SectionDraft],
    report: ReviewReport | None,
    force: bool,
    update_state: BaseModel | None = None,
) -> None:
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
    emit: Progress = on_event or (lambda _e: None)
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    # Cheap checks first: a bad TDD, template, cassette or output path costs no tokens.
    # Off the event loop: a slow disk must never hold up Ctrl-C or other documents.
    tdd = require_body(await asyncio.to_thread(load_tdd, tdd_path))
    template = template or get_template(settings.template)
    path = default_output_path(tdd, template.doc_kind, out, safe_names) if write else None
    if path is not None:
        check_output(path, force, "document")
    replay = recording is not None and recording.mode == "replay"
    if recording is not None:
        if replay:
            meta = check_replay(recording.path, tdd, template)
            if meta.research != (research is not None):
                said = "with" if meta.research else "without"
                raise InputError(
                    f"cassette {recording.path} was recorded {said} --research; "
                    "replay it with the same research flags"
                )
            today = today or meta.date
            # Replay the model and endpoint shape the cassette was recorded with,
            # unless the user names them: the request bodies depend on both.
            settings = settings.model_copy(
                update={
                    "model": settings.model or meta.model,
                    "base_url": settings.base_url or meta.base_url or None,
                    "max_tokens": settings.max_tokens or meta.max_tokens,
                    "structured": replay_structured(settings.structured, meta),
                    # Review calls are part of the recording (or absent from it).
                    "review": meta.review,
                    "max_revisions": meta.max_revisions,
                }
            )
        elif recording.mode == "new" and recording.path.exists() and not force:
            raise InputError(
                f"cassette {recording.path} exists; pass --force to re-record it, "
                "or --record-mode append"
            )
        else:
            # A folder, an input or a bad name is refused before any call is paid for.
            check_output(recording.path, True, "cassette", updates=True)
            check_output(meta_path(recording.path), True, "cassette metadata", updates=True)
            if recording.mode != "new" and recording.path.exists():
                check_cassette(recording.path)
    today = today or dt.date.today().isoformat()

    own_checkpoint = None
    if checkpoint is None and path is not None and recording is None:
        # Like batch: every validated section is saved, so a rerun after a failure
        # or Ctrl-C asks only for the sections that are missing.
        checkpoint = own_checkpoint = SectionCheckpoint(checkpoint_folder(path))
    session = _recording_session(recording)
    out_dir = path.parent if path is not None else Path.cwd()
    found: ResearchResult | None = None
    report: ReviewReport | None = None
    ledger: Ledger | None = None
    with session as tape:
        own = provider is None
        if provider is None:
            provider = await open_provider(
                settings.model,
                base_url=settings.base_url,
                timeout=settings.timeout,
                replay=replay,
                structured=settings.structured,
                reasoning_effort=settings.reasoning_effort,
                progress=lambda msg: emit(Event(kind="info", detail=msg)),
            )
        # Every call is recorded as it returns: a run that fails still says what it spent.
        ledger = Ledger(provider)
        max_tokens = settings.max_tokens or provider_default_max_tokens(provider)
        review_mode = resolve_review(settings.review, provider)
        revisions = resolve_revisions(settings.max_revisions, provider)
        try:
            async with asyncio.timeout(deadline):
                found, plan, drafts, report, header = await _stages(
                    tdd,
                    ledger,
                    template,
                    path,
                    out_dir,
                    settings=settings,
                    max_tokens=max_tokens,
                    review_mode=review_mode,
                    revisions=revisions,
                    research=research,
                    retrievers=retrievers,
                    reuse=recording is None,
                    checkpoint=checkpoint,
                    today=today,
                    emit=emit,
                )
        except BaseException as e:
            failed = _failed_record(
                e, ledger, provider, template, tdd, path, started, started_at, replay, recording
            )
            if path is not None:
                _save_failed_record(path, failed)
            # The CLI prints what was spent; the library caller can read it too.
            e.run_record = failed  # pyright: ignore[reportAttributeAccessIssue]
            if isinstance(e, TimeoutError) and deadline is not None:
                late = TidsmithError(
                    f"the run passed --deadline {deadline:g}s and was stopped; "
                    "raise --deadline, or use a faster model"
                )
                late.run_record = failed  # pyright: ignore[reportAttributeAccessIssue]
                raise late from e
            raise
        finally:
            if own:
                await provider.aclose()
        interactions = len(tape) if tape is not None else 0

    markdown = render_document(
        template,
        tdd,
        header,
        drafts,
        out_dir,
        research=found,
        review=report if review_appendix else None,
    )
    calls = [*(found.calls if found is not None else []), *_all_calls(drafts, report)]
    record = RunRecord(
        model=_model_label(provider),
        template=template.name,
        template_version=template.version,
        prompts=prompt_versions(research=found is not None, review=report is not None),
        tdd_path=tdd.path,
        tdd_sha256=tdd.sha256,
        output_path=str(path) if path is not None else None,
        started_at=started_at,
        wall_s=round(time.perf_counter() - started, 3),
        shared_prefix=plan.shared_prefix,
        tdd_tokens=plan.tdd_tokens,
        calls=calls,
        totals=totals(calls),
        replayed_from=str(recording.path) if replay and recording else None,
        research=_research_summary(found),
        review=review_mode,
        review_scores=report.scores if report is not None else {},
        section_notes={d.section_id: d.notes for d in drafts if d.notes},
    )
    meta = None
    if recording is not None and not replay:
        meta = CassetteMeta(
            tool_version=__version__,
            model=record.model,
            template=template.name,
            template_version=template.version,
            prompts=record.prompts,
            tdd_sha256=tdd.sha256,
            date=today,
            base_url=redact(settings.base_url or ""),
            structured=str(getattr(provider, "structured", "") or ""),
            max_tokens=max_tokens,
            recorded_wall_s=record.wall_s,
            interactions=interactions,
            research=found is not None,
            review=review_mode,
            max_revisions=revisions,
        )
    if path is not None:
        # Each write ends in an fsync (milliseconds); in a batch that would stall
        # every other document's calls on this event loop, so it runs in a thread.
        from agent.update.state import build_state

        state = build_state(template, tdd, drafts, record.model, path)
        try:
            await asyncio.to_thread(
                _write_outputs, path, markdown, record, drafts, report, force, state
            )
        except BaseException:
            if recording is not None and not replay:
                scratch_path(recording.path).unlink(missing_ok=True)
            raise
    if recording is not None and meta is not None:
        try:
            _commit_recording(recording, meta, force)
        finally:
            scratch_path(recording.path).unlink(missing_ok=True)
    if own_checkpoint is not None:
        own_checkpoint.clear()
    return Document(
        markdown=markdown,
        sections=drafts,
        record=record,
        path=str(path) if path else None,
        review=report,
        research=found,
    )


async def _stages(
    tdd: Tdd,
    provider: Provider,
    template: Template,
    path: Path | None,
    out_dir: Path,
    *,
    settings: Settings,
    max_tokens: int,
    review_mode: ReviewMode,
    revisions: int,
    research: ResearchConfig | None,
    retrievers: Sequence[BaseRetriever],
    reuse: bool,
    checkpoint: SectionCheckpoint | None,
    today: str,
    emit: Progress,
) -> tuple[
    ResearchResult | None, DraftPlan, list[SectionDraft], ReviewReport | None, DocumentHeader
]:
    """research → plan → draft → review and revise: the stages that call the model."""
    found: ResearchResult | None = None
    report: ReviewReport | None = None
    if research is not None:
        # A recording must hold the research calls, and a replay must
        # answer them from the cassette: neither reuses saved research.
        # A run that writes nothing keeps nothing either.
        found = await research_stage(
            tdd,
            provider,
            template,
            research,
            retrievers,
            out_dir if path is not None else None,
            max_tokens,
            emit,
            reuse=reuse,
        )
    plan = draft_plan(template, tdd, provider, max_tokens=max_tokens, research=found)
    if not plan.shared_prefix:
        emit(
            Event(
                kind="info",
                detail="the TDD is larger than the model's context: "
                "each section gets the TDD parts most relevant to it",
            )
        )
    drafts = await draft_all(
        provider,
        template,
        plan,
        concurrency=settings.concurrency,
        max_tokens=max_tokens,
        on_event=emit,
        checkpoint=checkpoint,
    )
    header = document_header(template, tdd, path, _model_label(provider), today)

    def render(current: list[SectionDraft]) -> str:
        return render_document(template, tdd, header, current, out_dir)

    if review_mode != "off":
        from agent.review import review_and_revise

        emit(Event(kind="info", section="review", detail=f"reviewing ({review_mode})"))
        drafts, report = await review_and_revise(
            provider,
            template,
            tdd,
            plan,
            drafts,
            render,
            max_revisions=revisions,
            llm=review_mode == "llm",
            max_tokens=max_tokens,
            codebase_versions=_codebase_versions(found),
            on_event=emit,
        )
    return found, plan, drafts, report, header


def _failed_record(
    error: BaseException,
    ledger: Ledger,
    provider: Provider,
    template: Template,
    tdd: Tdd,
    path: Path | None,
    started: float,
    started_at: str,
    replay: bool,
    recording: Recording | None,
) -> RunRecord:
    """The record of a run that did not finish: every call the provider was sent, as made."""
    interrupted = isinstance(error, KeyboardInterrupt | asyncio.CancelledError)
    return RunRecord(
        status="interrupted" if interrupted else "failed",
        error=redact(str(error))[:500] or type(error).__name__,
        model=_model_label(provider),
        template=template.name,
        template_version=template.version,
        prompts=prompt_versions(),
        tdd_path=tdd.path,
        tdd_sha256=tdd.sha256,
        output_path=None,
        started_at=started_at,
        wall_s=round(time.perf_counter() - started, 3),
        calls=list(ledger.records),
        totals=totals(ledger.records),
        replayed_from=str(recording.path) if replay and recording else None,
    )


def _save_failed_record(path: Path, record: RunRecord) -> None:
    """Best effort: a record that cannot be written must not hide the run's own error."""
    try:
        write_json_atomic(run_record_path(path), record)
    except OSError:
        log.warning("could not write the failed run's record beside %s", path)


def prompt_versions(*, research: bool = True, review: bool = True) -> dict[str, str]:
    """The versions of the prompts a run uses (all of them by default)."""
    versions = {p: load_prompt(p).version for p in ("draft_section", "repair_code")}
    if research:
        from agent.notes.condense import prompt_versions as research_versions

        versions.update(research_versions())
    if review:
        from agent.review import PROMPT_IDS

        versions.update({p: load_prompt(p).version for p in PROMPT_IDS})
    return versions


ReviewMode = Literal["llm", "lint", "off"]


def resolve_revisions(rounds: int | None, provider: Provider) -> int:
    """One round by default; none on embedded models.

    Measured on Qwen2.5-Coder-1.5B (cassettes/openai-tid-research): seven
    revised sections fixed none of their lint errors (code cut at the length
    bound the JSON grammar enforces) and took a third of the run's time.
    """
    if rounds is not None:
        return rounds
    return 0 if provider.name == "local" else 1


def resolve_review(mode: str, provider: Provider) -> ReviewMode:
    """`auto` asks the model for verdicts, except an embedded model, whose verdicts are noise."""
    if mode in ("llm", "lint", "off"):
        return mode
    return "lint" if provider.name == "local" else "llm"


async def research_stage(
    tdd: Tdd,
    provider: Provider,
    template: Template,
    config: ResearchConfig,
    retrievers: Sequence[BaseRetriever],
    out_dir: Path | None,
    max_tokens: int,
    emit: Progress,
    *,
    reuse: bool,
) -> ResearchResult:
    from agent.notes.run import run_research
    from research import build_sources

    # Beside the run records: a rerun of the same TDD reuses the research.
    cache = out_dir / ".tidsmith" / "research" if out_dir is not None else None
    sources = build_sources(tdd, config, retrievers, cache_dir=cache)
    emit(Event(kind="info", detail=f"researching: {', '.join(s.name for s in sources)}"))
    skipped = [line for s in sources for line in getattr(s, "skipped", [])]
    for line in skipped:
        emit(Event(kind="info", section="research", detail=line))
    found = await run_research(
        tdd,
        provider,
        template,
        sources,
        config=config,
        max_tokens=max_tokens,
        cache_dir=cache if reuse else None,
        on_event=emit,
    )
    found.warnings.extend(w for w in skipped if w not in found.warnings)
    what = "reused" if found.reused else "found"
    emit(Event(kind="info", detail=f"research {what} {len(found.notes)} notes"))
    return found


def draft_plan(
    template: Template,
    tdd: Tdd,
    provider: Provider,
    *,
    max_tokens: int,
    research: ResearchResult | None = None,
    sections: list[Section] | None = None,
) -> DraftPlan:
    """Each section's messages, with the research notes in the shared prefix when there are any.

    Every caller that (re)drafts a section builds its messages here, so a
    revision sees the same notes, and may cite them, as the first draft did.
    """
    notes = ""
    if research is not None:
        from agent.notes.run import notes_block

        # Notes get at most a quarter of the context; the TDD needs the rest.
        notes = notes_block(research, provider.context_window // 4)
    return plan_messages(
        template,
        tdd,
        provider,
        max_tokens=max_tokens,
        schema_in_text=provider.schema_in_text,
        sections=sections,
        notes=notes,
    )


def _research_summary(found: ResearchResult | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {
        "key": found.key,
        "reused": found.reused,
        "notes": len(found.notes),
        "sources": [s.id for s in found.sources],
        "failures": found.failures,
        "warnings": found.warnings,
    }


def _codebase_versions(found: ResearchResult | None) -> dict[str, str] | None:
    """Pinned versions the codebase declares, for the dependency lint."""
    if found is None:
        return None
    from research.codebase import pinned_versions

    return pinned_versions(found) or None


def _all_calls(drafts: list[SectionDraft], report: ReviewReport | None) -> list[CallRecord]:
    """Every call once: drafts carry their revision calls, and so does the report."""
    if report is None:
        return [c for d in drafts for c in d.calls]
    from agent.review import REVISE_PROMPT

    drafted = [c for d in drafts for c in d.calls if c.prompt_id != REVISE_PROMPT]
    return [*drafted, *report.calls]


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
        from agent.notes.run import references_markdown

        cited = {r for d in drafts for r in d.note_refs}
        appendices.append(references_markdown(research, cited, out_dir))
    if review is not None:
        from agent.review import review_appendix

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
def _recording_session(recording: Recording | None) -> Iterator[Any]:
    """Replay the cassette, or record into a hidden scratch copy of it.

    Every record mode records into the scratch file; `_commit_recording` moves
    it into place once the run has written its outputs. A failed run removes
    it, so no mode leaves the cassette of a failed run (which would hold the
    error, and replay it for ever).
    """
    if recording is None:
        yield None
        return
    if recording.mode == "replay":
        with cassette(recording.path, "replay") as tape:
            yield tape
        return
    target = recording.path
    scratch = scratch_path(target)
    scratch.unlink(missing_ok=True)
    try:
        if recording.mode != "new" and target.exists():
            # once/append start from the cassette as it is; it changes only on success.
            check_cassette(target)
            shutil.copyfile(target, scratch)
        with cassette(scratch, recording.mode) as tape:
            yield tape
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


def _commit_recording(recording: Recording, meta: CassetteMeta, force: bool) -> None:
    """Move a successful run's recording into place, then write its metadata."""
    scratch = scratch_path(recording.path)
    if scratch.exists():
        updates = recording.mode != "new"
        check_output(recording.path, force or updates, "cassette", updates=updates)
        try:
            scratch.replace(recording.path)
        except OSError as e:
            raise os_error(recording.path, e, "cassette") from None
    write_json_atomic(meta_path(recording.path), meta)


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
            from research import ResearchConfig as Config

            config = Config()
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
        from agent.providers.langchain import LangChainProvider

        return LangChainProvider(model)
    raise ConfigError(
        "model must be a provider:model id, a Provider or a LangChain chat model, "
        f"not {type(model).__name__}"
    )
