"""Provider batches: every section of a folder of TDDs drafted at half price, within 24 h.

OpenAI's Batch API and Anthropic's Message Batches take many requests at once
and answer within a day for half the price. Drafting is most of a run's cost,
so a provider batch only pre-fills the section checkpoints (`agent.draft.checkpoint`):
each section request is built exactly as the live draft builds it, all of them
go in one provider batch, and every reply that validates is saved under the
key the live run looks up. The normal batch (`agent.pipeline.batch.run_batch`) then
takes those sections from the checkpoints, drafts live only what the provider
batch did not deliver, and reviews and assembles as usual.

The batch id is saved in `<out>/.tidsmith/provider-batch.json` before any
waiting, so a rerun after Ctrl-C, a timeout or a crash polls the same batch
instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.cost import batch_cost
from agent.core.errors import ConfigError, InputError, ProviderError, TidsmithError
from agent.core.files import read_bytes
from agent.core.paths import default_output_path
from agent.core.settings import Settings
from agent.core.tdd import Tdd, load_tdd
from agent.core.templates import Section, Template
from agent.core.write import write_json_atomic
from agent.draft.checkpoint import SectionCheckpoint, checkpoint_folder, draft_key
from agent.draft.plan import PROMPT_ID, DraftPlan, SectionDraft, section_schema
from agent.draft.prompting import load_prompt
from agent.draft.sections import parse_reply
from agent.pipeline.batch_plan import plan_documents
from agent.pipeline.generate import draft_plan
from agent.providers import default_model_id, parse_model_id, provider_default_max_tokens
from agent.providers.base import BatchProvider, BatchStatus, Provider, Reply, Request, call_record

if TYPE_CHECKING:
    from research import ResearchConfig, ResearchResult

# OpenAI's completion window is 24 h and finalizing takes a while after it.
DEFAULT_MAX_WAIT_S = 25 * 3600.0
STATE_NAME = "provider-batch.json"

Say = Callable[[str], None]


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


class ProviderBatchResult(BaseModel):
    """What the provider batch delivered into the checkpoints."""

    batch_id: str | None = None
    resumed: bool = False
    requests: int = 0
    saved: int = 0
    already: int = Field(default=0, description="sections checkpointed before; not sent")
    failed: dict[str, str] = Field(
        default_factory=dict, description="custom_id -> why it was not saved (drafted live later)"
    )


class BatchPending(TidsmithError):
    """The provider batch is still running when the wait bound ran out."""

    # EX_TEMPFAIL: nothing is wrong, try again later.
    exit_code = 75


@dataclass
class _Job:
    """One section request: what it is, and where its validated reply goes."""

    custom_id: str
    tdd: Tdd
    section: Section
    plan: DraftPlan
    request: Request
    key: str
    checkpoint: SectionCheckpoint


async def run_provider_batch(
    paths: list[Path],
    *,
    settings: Settings,
    template: Template,
    provider: Provider | None = None,
    out: Path | None = None,
    force: bool = False,
    safe_names: bool = False,
    resume: bool = True,
    research: ResearchConfig | None = None,
    poll_interval: float = 60.0,
    max_wait_s: float | None = None,
    on_progress: Say | None = None,
) -> ProviderBatchResult:
    """Draft every section the batch of `paths` needs through one provider batch.

    Submits (or, when a state file says one is running for the same requests,
    resumes) a provider batch, polls it every `poll_interval` seconds for at
    most `max_wait_s` (default 25 h), and saves each valid reply as a section
    checkpoint. Run `agent.pipeline.batch.run_batch` with the same arguments afterwards
    to assemble the documents; it drafts live only what is still missing.

    Raises:
        ConfigError: the model has no batch API, or --no-resume was asked for.
        InputError: the state file belongs to other requests (inputs changed).
        BatchPending: the batch was still running when `max_wait_s` ran out.
        ProviderError: the provider refused the batch or polling failed.
    """
    say: Say = on_progress or (lambda _line: None)
    if not resume:
        raise ConfigError(
            "--provider-batch keeps its drafts as checkpoints, which --no-resume deletes; "
            "drop --no-resume (delete <out>/.tidsmith/checkpoints/ to draft afresh)"
        )
    own = provider is None
    if provider is None:
        kind, _ = parse_model_id(settings.model or default_model_id())
        if kind not in ("openai", "anthropic"):
            raise _no_batch_api(kind)
        from agent.providers import open_provider

        provider = await open_provider(
            settings.model,
            base_url=settings.base_url,
            timeout=settings.timeout,
            structured=settings.structured,
            reasoning_effort=settings.reasoning_effort,
        )
    try:
        if not isinstance(provider, BatchProvider) or provider.name not in ("openai", "anthropic"):
            raise _no_batch_api(provider.name)
        return await _run(
            provider,
            paths,
            settings=settings,
            template=template,
            out=out,
            force=force,
            safe_names=safe_names,
            research=research,
            poll_interval=poll_interval,
            max_wait_s=DEFAULT_MAX_WAIT_S if max_wait_s is None else max_wait_s,
            say=say,
        )
    finally:
        if own:
            await provider.aclose()


def _no_batch_api(kind: str) -> ConfigError:
    return ConfigError(
        f"--provider-batch needs openai: or anthropic: models; {kind} has no batch API "
        "(drop --provider-batch to draft live)"
    )


async def _run(
    provider: BatchProvider,
    paths: list[Path],
    *,
    settings: Settings,
    template: Template,
    out: Path | None,
    force: bool,
    safe_names: bool,
    research: ResearchConfig | None,
    poll_interval: float,
    max_wait_s: float,
    say: Say,
) -> ProviderBatchResult:
    label = f"{provider.name}:{provider.model}"
    work = documents_to_draft(paths, template, out=out, force=force, safe_names=safe_names)
    max_tokens = settings.max_tokens or provider_default_max_tokens(provider)
    found: dict[str, ResearchResult] = {}
    if research is not None:
        found = await _research_all(work, provider, template, research, max_tokens, settings, say)
        # A document whose research failed is left to the live run, which reports why.
        work = [(tdd, output) for tdd, output in work if tdd.path in found]
    jobs = [
        job
        for i, (tdd, output) in enumerate(work)
        for job in _jobs(provider, template, i, tdd, output, max_tokens, found.get(tdd.path))
    ]
    by_section = {(_abs(j.tdd), j.section.id): j for j in jobs}
    needed = {j.custom_id: j for j in jobs if j.checkpoint.load(j.section.id, j.key) is None}
    already = len(jobs) - len(needed)
    path = state_file(paths, template, out, safe_names)
    state = read_state(path)
    if state is not None:
        _check_state(state, path, label, by_section)
        say(
            f"provider batch {state.batch_id}: resuming (submitted {state.submitted_at}, "
            f"{len(state.requests)} requests)"
        )
        batched = {(e.tdd, e.section) for e in state.requests.values()}
        extra = sum((_abs(j.tdd), j.section.id) not in batched for j in needed.values())
        if extra:
            say(f"{extra} sections are not in that batch (new since); they are drafted live")
        resumed = True
    elif needed:
        state = await _submit(provider, needed, path)
        say(
            f"provider batch {state.batch_id}: submitted {len(needed)} section requests for "
            f"{len(work)} documents to {label} ({already} sections already checkpointed); "
            f"state in {path}"
        )
        resumed = False
    else:
        say(f"provider batch: nothing to submit ({already} sections already checkpointed)")
        return ProviderBatchResult(already=already)

    result = ProviderBatchResult(
        batch_id=state.batch_id, resumed=resumed, requests=len(state.requests), already=already
    )
    status = await _wait(provider, state, poll_interval, max_wait_s, say)
    if status.failed:
        # Nothing in it will ever be answered: the next run submits anew.
        path.unlink(missing_ok=True)
        raise ProviderError(
            f"provider batch {state.batch_id} failed: {status.failed}; "
            "fix the cause and rerun to submit a new batch"
        )
    try:
        items = await provider.batch_results(state.batch_id)
    except ProviderError as e:
        raise ProviderError(f"{e}; {_rerun(state)}") from e
    for custom_id, entry in state.requests.items():
        job = by_section[(entry.tdd, entry.section)]
        item = items.get(custom_id)
        why = "no result for it" if item is None else item.error or "no reply"
        if item is not None and item.reply is not None:
            try:
                job.checkpoint.save(job.key, _draft(provider, job, item.reply))
            except ValueError as e:
                why = f"invalid reply: {e}"
            else:
                result.saved += 1
                continue
        result.failed[custom_id] = why
    # The checkpoints hold the results now; a rerun must not poll this batch again.
    path.unlink(missing_ok=True)
    say(
        f"provider batch {state.batch_id}: {result.saved} sections saved, "
        f"{len(result.failed)} not usable (drafted live next)"
    )
    for custom_id, why in sorted(result.failed.items()):
        say(f"  {custom_id}: {why}")
    return result


async def _submit(
    provider: BatchProvider, needed: dict[str, _Job], path: Path
) -> ProviderBatchState:
    """Submit the requests and save the state at once: a lost id would mean paying twice."""
    batch_id = await provider.submit_batch({cid: job.request for cid, job in needed.items()})
    state = ProviderBatchState(
        provider=provider.name,
        model=f"{provider.name}:{provider.model}",
        batch_id=batch_id,
        submitted_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        requests={
            cid: BatchEntry(tdd=_abs(job.tdd), section=job.section.id, key=job.key)
            for cid, job in needed.items()
        },
    )
    try:
        write_json_atomic(path, state)
    except InputError as e:
        raise InputError(
            f"provider batch {batch_id} was submitted, but its state could not be saved "
            f"({e}); wait for it in the provider's console or cancel it there"
        ) from e
    return state


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


def _jobs(
    provider: Provider,
    template: Template,
    index: int,
    tdd: Tdd,
    output: Path,
    max_tokens: int,
    found: ResearchResult | None,
) -> list[_Job]:
    """Each section's request and checkpoint key, built as `draft_all` builds them."""
    plan = draft_plan(template, tdd, provider, max_tokens=max_tokens, research=found)
    prompt = load_prompt(PROMPT_ID)
    checkpoint = SectionCheckpoint(checkpoint_folder(output))
    jobs: list[_Job] = []
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
        jobs.append(_Job(custom_id, tdd, section, plan, request, key, checkpoint))
    return jobs


def _abs(tdd: Tdd) -> str:
    # The same TDD whatever the working folder or the spelling of DIR on the rerun.
    return str(Path(tdd.path).resolve())


def _draft(provider: Provider, job: _Job, reply: Reply) -> SectionDraft:
    """A batch reply validated as `draft_section` validates a live one (ValueError if not)."""
    model, _ = section_schema(job.section, job.plan.cites)
    content = parse_reply(model, reply).model_dump()
    record = call_record(provider, job.request, reply, attempt=1, latency_s=0.0)
    cost = batch_cost(provider, record.cost_usd)
    return SectionDraft(
        section_id=job.section.id,
        content=content,
        tdd_refs=[str(r) for r in content.get("tdd_refs", [])],
        note_refs=[str(r) for r in content.get("note_refs", [])],
        calls=[record.model_copy(update={"ok": True, "cost_usd": cost})],
    )


async def _research_all(
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
    """
    from agent.pipeline.generate import research_stage

    limit = asyncio.Semaphore(max(1, min(settings.concurrency, provider.max_concurrency)))
    found: dict[str, ResearchResult] = {}

    async def one(tdd: Tdd, output: Path) -> None:
        name = Path(tdd.path).stem
        async with limit:
            try:
                result = await research_stage(
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
                return
            if result.failures:
                # Research with a failed source is not cached, so the live run would
                # research again and draft from other notes: its batch drafts would be wasted.
                say(f"{name}: a research source failed, so it is drafted live, not batched")
                return
            found[tdd.path] = result

    await asyncio.gather(*(one(tdd, output) for tdd, output in work))
    return found


async def _wait(
    provider: BatchProvider,
    state: ProviderBatchState,
    poll_interval: float,
    max_wait_s: float,
    say: Say,
) -> BatchStatus:
    """Poll until the batch ends or fails; BatchPending once `max_wait_s` would pass."""
    started = time.monotonic()
    shown = ""
    while True:
        try:
            status = await provider.batch_status(state.batch_id)
        except ProviderError as e:
            raise ProviderError(f"{e}; {_rerun(state)}") from e
        line = (
            f"provider batch {state.batch_id}: {status.status}, {status.succeeded}/"
            f"{status.total} succeeded, {status.errored} errored"
        )
        if line != shown:
            say(f"{line} ({_duration(time.monotonic() - started)} waited)")
            shown = line
        if status.ended or status.failed:
            return status
        waited = time.monotonic() - started
        if waited + poll_interval > max_wait_s:
            raise BatchPending(
                f"provider batch {state.batch_id} ({state.model}) is still {status.status} "
                f"({status.succeeded}/{status.total} succeeded) after "
                f"{_duration(waited)}; {_rerun(state)}"
            )
        await asyncio.sleep(poll_interval)


def _rerun(state: ProviderBatchState) -> str:
    return (
        f"provider batch {state.batch_id} keeps running at {state.provider}: "
        "run the same command again to resume polling it"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _check_state(
    state: ProviderBatchState,
    path: Path,
    label: str,
    jobs: dict[tuple[str, str], _Job],
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
    return f"interrupted; {_rerun(state)} (it is not cancelled)"
