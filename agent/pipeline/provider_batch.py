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
instead of paying for a second one. The requests are built in
`agent.pipeline.provider_batch_jobs`, the state file is
`agent.pipeline.provider_batch_state`. Imports those and the batch plan; never
a front end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from agent.core.errors import ConfigError, InputError, ProviderError, TidsmithError
from agent.core.models import run_defaults
from agent.core.settings import Settings
from agent.core.tdd import Tdd
from agent.core.templates import Template
from agent.core.write import write_json_atomic
from agent.pipeline.provider_batch_jobs import (
    Say,
    SectionJob,
    documents_to_draft,
    draft_from_reply,
    research_all,
    section_jobs,
    tdd_key,
)
from agent.pipeline.provider_batch_state import (
    STATE_NAME,
    BatchEntry,
    ProviderBatchState,
    check_state,
    interrupted_message,
    read_state,
    rerun_hint,
    state_file,
)
from agent.pipeline.stages import model_label
from agent.providers import (
    default_model_id,
    open_configured,
    parse_model_id,
    provider_default_max_tokens,
)
from agent.providers.base import BatchItem, BatchProvider, BatchStatus, Provider

if TYPE_CHECKING:
    from research import ResearchConfig, ResearchResult

__all__ = [
    "DEFAULT_MAX_WAIT_S",
    "STATE_NAME",
    "BatchEntry",
    "BatchPending",
    "ProviderBatchResult",
    "ProviderBatchState",
    "documents_to_draft",
    "interrupted_message",
    "read_state",
    "run_provider_batch",
    "state_file",
]

# OpenAI's completion window is 24 h and finalizing takes a while after it.
DEFAULT_MAX_WAIT_S = 25 * 3600.0


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
    if not resume:
        raise ConfigError(
            "--provider-batch keeps its drafts as checkpoints, which --no-resume deletes; "
            "drop --no-resume (delete <out>/.tidsmith/checkpoints/ to draft afresh)"
        )
    async with _batch_provider(provider, settings) as opened:
        batch = ProviderBatchRun(
            opened,
            settings=settings,
            template=template,
            say=on_progress or (lambda _line: None),
            poll_interval=poll_interval,
            max_wait_s=DEFAULT_MAX_WAIT_S if max_wait_s is None else max_wait_s,
        )
        return await batch.run(
            paths, out=out, force=force, safe_names=safe_names, research=research
        )


@asynccontextmanager
async def _batch_provider(
    given: Provider | None, settings: Settings
) -> AsyncIterator[BatchProvider]:
    """The provider given, or one opened (and closed after); ConfigError without a batch API."""
    provider = given
    if provider is None:
        kind, _ = parse_model_id(settings.model or default_model_id())
        if kind not in ("openai", "anthropic"):
            raise _no_batch_api(kind)
        provider = await open_configured(
            settings,
        )
    try:
        if not isinstance(provider, BatchProvider) or not run_defaults(provider.name).batch_api:
            raise _no_batch_api(provider.name)
        yield provider
    finally:
        if given is None:
            await provider.aclose()


def _no_batch_api(kind: str) -> ConfigError:
    return ConfigError(
        f"--provider-batch needs openai: or anthropic: models; {kind} has no batch API "
        "(drop --provider-batch to draft live)"
    )


class ProviderBatchRun:
    """One provider batch: build the section requests, submit or resume, wait, save the replies."""

    def __init__(
        self,
        provider: BatchProvider,
        *,
        settings: Settings,
        template: Template,
        say: Say,
        poll_interval: float,
        max_wait_s: float,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.template = template
        self.say = say
        self.poll_interval = poll_interval
        self.max_wait_s = max_wait_s
        self.label = model_label(provider)
        self.max_tokens = settings.max_tokens or provider_default_max_tokens(provider)

    async def run(
        self,
        paths: list[Path],
        *,
        out: Path | None,
        force: bool,
        safe_names: bool,
        research: ResearchConfig | None,
    ) -> ProviderBatchResult:
        """Submit (or resume) the batch for `paths`, wait for it, and checkpoint its replies."""
        work = documents_to_draft(paths, self.template, out=out, force=force, safe_names=safe_names)
        work, jobs = await self._jobs(work, research)
        by_section = {(tdd_key(j.tdd), j.section.id): j for j in jobs}
        needed = {j.custom_id: j for j in jobs if j.checkpoint.load(j.section.id, j.key) is None}
        already = len(jobs) - len(needed)
        path = state_file(paths, self.template, out, safe_names)
        state = read_state(path)
        resumed = state is not None
        if state is not None:
            check_state(state, path, self.label, by_section)
            self._say_resumed(state, needed)
        elif needed:
            state = await _submit(self.provider, needed, path)
            self.say(
                f"provider batch {state.batch_id}: submitted {len(needed)} section requests for "
                f"{len(work)} documents to {self.label} ({already} sections already "
                f"checkpointed); state in {path}"
            )
        else:
            self.say(f"provider batch: nothing to submit ({already} sections already checkpointed)")
            return ProviderBatchResult(already=already)
        result = ProviderBatchResult(
            batch_id=state.batch_id, resumed=resumed, requests=len(state.requests), already=already
        )
        await self._collect(state, path, by_section, result)
        return result

    async def _jobs(
        self, work: list[tuple[Tdd, Path]], research: ResearchConfig | None
    ) -> tuple[list[tuple[Tdd, Path]], list[SectionJob]]:
        """The documents to batch (research first, when asked) and every section's request."""
        researched: dict[str, ResearchResult] = {}
        if research is not None:
            researched = await research_all(
                work,
                self.provider,
                self.template,
                research,
                self.max_tokens,
                self.settings,
                self.say,
            )
            # A document whose research failed is left to the live run, which reports why.
            work = [(tdd, output) for tdd, output in work if tdd.path in researched]
        jobs = [
            job
            for i, (tdd, output) in enumerate(work)
            for job in section_jobs(
                self.provider,
                self.template,
                i,
                tdd,
                output,
                self.max_tokens,
                researched.get(tdd.path),
            )
        ]
        return work, jobs

    def _say_resumed(self, state: ProviderBatchState, needed: dict[str, SectionJob]) -> None:
        self.say(
            f"provider batch {state.batch_id}: resuming (submitted {state.submitted_at}, "
            f"{len(state.requests)} requests)"
        )
        batched = {(e.tdd, e.section) for e in state.requests.values()}
        extra = sum((tdd_key(j.tdd), j.section.id) not in batched for j in needed.values())
        if extra:
            self.say(f"{extra} sections are not in that batch (new since); they are drafted live")

    async def _collect(
        self,
        state: ProviderBatchState,
        path: Path,
        by_section: dict[tuple[str, str], SectionJob],
        result: ProviderBatchResult,
    ) -> None:
        """Wait for the batch, then save every reply that validates as a section checkpoint."""
        status = await _wait(self.provider, state, self.poll_interval, self.max_wait_s, self.say)
        if status.failed:
            # Nothing in it will ever be answered: the next run submits anew.
            _forget_state(path)
            raise ProviderError(
                f"provider batch {state.batch_id} failed: {status.failed}; "
                "fix the cause and rerun to submit a new batch"
            )
        try:
            items = await self.provider.batch_results(state.batch_id)
        except ProviderError as e:
            raise ProviderError(f"{e}; {rerun_hint(state)}") from e
        for custom_id, entry in state.requests.items():
            job = by_section[(entry.tdd, entry.section)]
            why = self._save(job, items.get(custom_id))
            if why is None:
                result.saved += 1
            else:
                result.failed[custom_id] = why
        # The checkpoints hold the results now; a rerun must not poll this batch again.
        _forget_state(path)
        self.say(
            f"provider batch {state.batch_id}: {result.saved} sections saved, "
            f"{len(result.failed)} not usable (drafted live next)"
        )
        for custom_id, why in sorted(result.failed.items()):
            self.say(f"  {custom_id}: {why}")

    def _save(self, job: SectionJob, item: BatchItem | None) -> str | None:
        """Checkpoint one batch reply; None when saved, else why it was not."""
        why = "no result for it" if item is None else item.error or "no reply"
        if item is not None and item.reply is not None:
            try:
                job.checkpoint.save(job.key, draft_from_reply(self.provider, job, item.reply))
            except ValueError as e:
                why = f"invalid reply: {e}"
            else:
                return None
        return why


def _forget_state(path: Path) -> None:
    """Remove the state file: its batch is collected, or will never answer."""
    path.unlink(missing_ok=True)


async def _submit(
    provider: BatchProvider, needed: dict[str, SectionJob], path: Path
) -> ProviderBatchState:
    """Submit the requests and save the state at once: a lost id would mean paying twice."""
    batch_id = await provider.submit_batch({cid: job.request for cid, job in needed.items()})
    state = ProviderBatchState(
        provider=provider.name,
        model=model_label(provider),
        batch_id=batch_id,
        submitted_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        requests={
            cid: BatchEntry(tdd=tdd_key(job.tdd), section=job.section.id, key=job.key)
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
            raise ProviderError(f"{e}; {rerun_hint(state)}") from e
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
                f"{_duration(waited)}; {rerun_hint(state)}"
            )
        await asyncio.sleep(poll_interval)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
