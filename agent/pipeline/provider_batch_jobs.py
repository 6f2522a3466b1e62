"""A provider batch's requests: each section's request and key, built as the live draft does.

Also the live research that comes first (its notes are part of every
section's messages) and the validation of a batch reply into a section.
Imports `agent.pipeline.batch_plan` and `agent.pipeline.stages` only, of the pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.cost import batch_cost
from agent.core.errors import TidsmithError
from agent.core.settings import Settings
from agent.core.tdd import Tdd
from agent.core.templates import Section, Template
from agent.draft.checkpoint import SectionCheckpoint, checkpoint_folder, draft_key
from agent.draft.plan import PROMPT_ID, DraftPlan, SectionDraft, section_schema
from agent.draft.prompting import load_prompt
from agent.draft.sections import parse_reply, with_facts
from agent.pipeline.batch_plan import plan_documents
from agent.pipeline.stages import draft_plan, research_stage
from agent.providers.base import Provider, Reply, Request, call_record

if TYPE_CHECKING:
    from research import ResearchConfig, ResearchResult

Say = Callable[[str], None]


@dataclass
class SectionJob:
    """One section request: what it is, and where its validated reply goes."""

    custom_id: str
    tdd: Tdd
    section: Section
    plan: DraftPlan
    request: Request
    key: str
    checkpoint: SectionCheckpoint


def documents_to_draft(
    paths: list[Path],
    template: Template,
    *,
    out: Path | None = None,
    force: bool = False,
    safe_names: bool = False,
) -> list[tuple[Tdd, Path]]:
    """The TDDs `run_batch` would draft, with their output paths (its plan, resume on).

    Unreadable TDDs, clashing outputs and existing documents (unless `force`)
    are left out here; `run_batch` reports each of them on its row.
    """
    planned = plan_documents(paths, template, out=out, force=force, safe_names=safe_names)
    return [(p.tdd, p.output) for p in planned if p.tdd is not None and p.output is not None]


def section_jobs(
    provider: Provider,
    template: Template,
    index: int,
    tdd: Tdd,
    output: Path,
    max_tokens: int,
    research: ResearchResult | None,
) -> list[SectionJob]:
    """Each section's request and checkpoint key, built as `draft_all` builds them."""
    plan = draft_plan(template, tdd, provider, max_tokens=max_tokens, research=research)
    prompt = load_prompt(PROMPT_ID)
    checkpoint = SectionCheckpoint(checkpoint_folder(output))
    jobs: list[SectionJob] = []
    for section in template.sections:
        if section.id not in plan.requests:
            continue
        schema = section_schema(section, plan.cites)[1]
        messages = plan.requests[section.id]
        # The same Request `structured_call` sends for a section's first attempt.
        request = Request(
            prompt_id=prompt.id,
            prompt_version=prompt.version,
            label=section.id,
            messages=messages,
            schema_name=f"section_{section.id}",
            json_schema=schema,
            max_tokens=max_tokens,
        )
        key = draft_key(provider, template, section, plan, max_tokens)
        # Both vendors take up to 64 of [A-Za-z0-9_-]; section ids are [a-z0-9_], at most 40.
        custom_id = f"d{index:04d}-{section.id}"
        jobs.append(SectionJob(custom_id, tdd, section, plan, request, key, checkpoint))
    return jobs


def tdd_key(tdd: Tdd) -> str:
    # The same TDD whatever the working folder or the spelling of DIR on the rerun.
    return str(Path(tdd.path).resolve())


def draft_from_reply(provider: Provider, job: SectionJob, reply: Reply) -> SectionDraft:
    """A batch reply validated as `draft_section` validates a live one (ValueError if not)."""
    model, _ = section_schema(job.section, job.plan.cites)
    content = parse_reply(model, reply).model_dump()
    # Code, not a call: a batch reply is completed and checked as a live one is.
    content, notes = with_facts(job.section, content, job.plan.facts(job.section.id))
    record = call_record(provider, job.request, reply, attempt=1, latency_s=0.0)
    cost = batch_cost(provider, record.cost_usd)
    return SectionDraft(
        section_id=job.section.id,
        content=content,
        tdd_refs=[str(r) for r in content.get("tdd_refs", [])],
        note_refs=[str(r) for r in content.get("note_refs", [])],
        calls=[record.model_copy(update={"ok": True, "cost_usd": cost})],
        notes=notes,
    )


async def research_all(
    work: list[tuple[Tdd, Path]],
    provider: Provider,
    template: Template,
    config: ResearchConfig,
    max_tokens: int,
    settings: Settings,
    say: Say,
) -> dict[str, ResearchResult]:
    """Research each document live first, into the cache the live run reuses.

    The notes are part of every section's messages, so the batch must be built
    from the same research the live run will load from `<out>/.tidsmith/research/`.
    Returns each usable result by TDD path.
    """
    limit = asyncio.Semaphore(max(1, min(settings.concurrency, provider.max_concurrency)))

    async def research_document(tdd: Tdd, output: Path) -> ResearchResult | None:
        async with limit:
            return await _research_document(
                tdd, output, provider, template, config, max_tokens, say
            )

    results = await asyncio.gather(*(research_document(tdd, output) for tdd, output in work))
    return {
        tdd.path: result
        for (tdd, _), result in zip(work, results, strict=True)
        if result is not None
    }


async def _research_document(
    tdd: Tdd,
    output: Path,
    provider: Provider,
    template: Template,
    config: ResearchConfig,
    max_tokens: int,
    say: Say,
) -> ResearchResult | None:
    """One document's research, or None (said why) when it must be drafted live instead."""
    name = Path(tdd.path).stem
    try:
        research = await research_stage(
            tdd,
            provider,
            template,
            config,
            (),
            output.parent,
            max_tokens,
            lambda e: say(f"{name}: {e.detail}") if e.kind == "info" else None,
            reuse=True,
        )
    except TidsmithError as e:
        say(f"{name}: research failed, so it is drafted live, not batched ({e})")
        return None
    if research.failures:
        # Research with a failed source is not cached, so the live run would
        # research again and draft from other notes: its batch drafts would be wasted.
        say(f"{name}: a research source failed, so it is drafted live, not batched")
        return None
    return research
