"""The stages that call the model, in order: research → plan → draft → review and revise.

Also what a run decides from its provider before they start (max tokens,
review mode, revision rounds) and the prompt versions the stages use. Imports
`agent.pipeline.options` and `agent.pipeline.outputs` only, of the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from agent.core.models import run_defaults
from agent.core.records import Event, Progress
from agent.core.settings import Settings
from agent.core.tdd import Tdd
from agent.core.templates import Section, Template
from agent.document.assemble import DocumentHeader
from agent.draft.checkpoint import SectionCheckpoint
from agent.draft.plan import DraftAs, DraftPlan, SectionDraft, plan_messages
from agent.draft.prompting import load_prompt
from agent.draft.sections import draft_all
from agent.notes.condense import prompt_versions as research_prompt_versions
from agent.notes.run import notes_block, run_research
from agent.pipeline.options import PreparedRun
from agent.pipeline.outputs import document_header, render_document
from agent.providers import provider_default_max_tokens
from agent.providers.base import Provider
from agent.review import PROMPT_IDS as REVIEW_PROMPT_IDS
from agent.review import ReviewReport, review_and_revise
from research import build_sources
from research.codebase import pinned_versions

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

    from research import ResearchConfig, ResearchResult

ReviewMode = Literal["llm", "lint", "off"]


def model_label(provider: Provider) -> str:
    """The `provider:model` a run record and a document header name."""
    return f"{provider.name}:{provider.model}"


def prompt_versions(*, research: bool = True, review: bool = True) -> dict[str, str]:
    """The versions of the prompts a run uses (all of them by default)."""
    versions = {
        p: load_prompt(p).version
        for p in ("draft_section", "draft_markdown", "rewrite_cut", "repair_code", "write_code")
    }
    if research:
        versions.update(research_prompt_versions())
    if review:
        versions.update({p: load_prompt(p).version for p in REVIEW_PROMPT_IDS})
    return versions


def resolve_revisions(rounds: int | None, provider: Provider) -> int:
    """The model table's rounds for the provider: one, none on the embedded model.

    Measured on Qwen2.5-Coder-1.5B (cassettes/openai-tid-research): seven
    revised sections fixed none of their lint errors (code cut at the length
    bound the JSON grammar enforces) and took a third of the run's time.
    """
    if rounds is not None:
        return rounds
    return run_defaults(provider.name).max_revisions


def resolve_review(mode: str, provider: Provider) -> ReviewMode:
    """`auto` asks the model for verdicts, except where the model table says they are noise
    (the embedded model's `review: lint`)."""
    if mode in ("llm", "lint", "off"):
        return mode
    return run_defaults(provider.name).review


def resolve_draft_as(mode: str, provider: Provider) -> DraftAs:
    """`auto` is what the model table says for the provider (markdown on the embedded model)."""
    if mode in ("json", "markdown"):
        return cast(DraftAs, mode)
    return run_defaults(provider.name).draft_as


@dataclass(frozen=True)
class StageSettings:
    """The settings the stages run with, resolved for the provider."""

    max_tokens: int
    review: ReviewMode
    revisions: int
    draft_as: DraftAs = "json"

    @classmethod
    def resolve(cls, settings: Settings, provider: Provider) -> StageSettings:
        return cls(
            max_tokens=settings.max_tokens or provider_default_max_tokens(provider),
            review=resolve_review(settings.review, provider),
            revisions=resolve_revisions(settings.max_revisions, provider),
            draft_as=resolve_draft_as(settings.draft_as, provider),
        )


@dataclass(frozen=True)
class StageResults:
    """What the model stages produced: research, the plan, the sections, the review."""

    research: ResearchResult | None
    plan: DraftPlan
    drafts: list[SectionDraft]
    review: ReviewReport | None
    header: DocumentHeader


async def run_stages(
    run: PreparedRun,
    provider: Provider,
    stage: StageSettings,
    *,
    retrievers: Sequence[BaseRetriever],
    checkpoint: SectionCheckpoint | None,
    emit: Progress,
) -> StageResults:
    """research → plan → draft → review and revise: the stages that call the model."""
    research: ResearchResult | None = None
    if run.research is not None:
        # A recording must hold the research calls, and a replay must
        # answer them from the cassette: neither reuses saved research.
        # A run that writes nothing keeps nothing either.
        research = await research_stage(
            run.tdd,
            provider,
            run.template,
            run.research,
            retrievers,
            run.out_dir if run.path is not None else None,
            stage.max_tokens,
            emit,
            reuse=run.recording is None,
        )
    plan, drafts = await draft_stage(run, provider, stage, research, checkpoint, emit)
    header = document_header(run.template, run.tdd, run.path, model_label(provider), run.today)
    report: ReviewReport | None = None
    if stage.review != "off":
        drafts, report = await review_stage(
            run, provider, stage, plan, drafts, header, research, emit
        )
    return StageResults(research, plan, drafts, report, header)


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
    """Search the sources `config` names and condense what they say into notes."""
    # Beside the run records: a rerun of the same TDD reuses the research.
    cache = out_dir / ".tidsmith" / "research" if out_dir is not None else None
    sources = build_sources(tdd, config, retrievers, cache_dir=cache)
    emit(Event(kind="info", detail=f"researching: {', '.join(s.name for s in sources)}"))
    skipped = [line for s in sources for line in getattr(s, "skipped", [])]
    for line in skipped:
        emit(Event(kind="info", section="research", detail=line))
    research = await run_research(
        tdd,
        provider,
        template,
        sources,
        config=config,
        max_tokens=max_tokens,
        cache_dir=cache if reuse else None,
        on_event=emit,
    )
    research.warnings.extend(w for w in skipped if w not in research.warnings)
    what = "reused" if research.reused else "found"
    emit(Event(kind="info", detail=f"research {what} {len(research.notes)} notes"))
    return research


def draft_plan(
    template: Template,
    tdd: Tdd,
    provider: Provider,
    *,
    max_tokens: int,
    research: ResearchResult | None = None,
    sections: list[Section] | None = None,
    draft_as: DraftAs = "json",
) -> DraftPlan:
    """Each section's messages, with the research notes in the shared prefix when there are any.

    Every caller that (re)drafts a section builds its messages here, so a
    revision sees the same notes, and may cite them, as the first draft did.
    """
    notes = ""
    if research is not None:
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
        pins=pinned_versions(research) if research is not None else None,
        draft_as=draft_as,
    )


async def draft_stage(
    run: PreparedRun,
    provider: Provider,
    stage: StageSettings,
    research: ResearchResult | None,
    checkpoint: SectionCheckpoint | None,
    emit: Progress,
) -> tuple[DraftPlan, list[SectionDraft]]:
    """Plan every section's messages, then draft the sections concurrently."""
    plan = draft_plan(
        run.template,
        run.tdd,
        provider,
        max_tokens=stage.max_tokens,
        research=research,
        draft_as=stage.draft_as,
    )
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
        run.template,
        plan,
        concurrency=run.settings.concurrency,
        max_tokens=stage.max_tokens,
        on_event=emit,
        checkpoint=checkpoint,
    )
    return plan, drafts


async def review_stage(
    run: PreparedRun,
    provider: Provider,
    stage: StageSettings,
    plan: DraftPlan,
    drafts: list[SectionDraft],
    header: DocumentHeader,
    research: ResearchResult | None,
    emit: Progress,
) -> tuple[list[SectionDraft], ReviewReport]:
    """Lint (and with `llm`, ask for verdicts on) the document; revise what fails."""

    def render(current: list[SectionDraft]) -> str:
        return render_document(run.template, run.tdd, header, current, run.out_dir)

    emit(Event(kind="info", section="review", detail=f"reviewing ({stage.review})"))
    return await review_and_revise(
        provider,
        run.template,
        run.tdd,
        plan,
        drafts,
        render,
        max_revisions=stage.revisions,
        llm=stage.review == "llm",
        max_tokens=stage.max_tokens,
        codebase_versions=_codebase_versions(research),
        on_event=emit,
    )


def _codebase_versions(research: ResearchResult | None) -> dict[str, str] | None:
    """Pinned versions the codebase declares, for the dependency lint."""
    if research is None:
        return None
    return pinned_versions(research) or None
