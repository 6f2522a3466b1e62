"""The run record: what a finished run did, and what a failed or interrupted one spent.

Builds `agent.core.records.RunRecord` from a run's stages or from its ledger,
and saves the record of a run that did not finish. Imports `options`,
`stages` and `ledger` only, of the pipeline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import TidsmithError
from agent.core.paths import run_record_path
from agent.core.records import CallRecord, RunRecord, totals
from agent.core.redact import redact
from agent.core.write import write_json_atomic
from agent.draft.plan import SectionDraft
from agent.pipeline.ledger import Ledger
from agent.pipeline.options import PreparedRun
from agent.pipeline.stages import StageResults, StageSettings, model_label, prompt_versions
from agent.providers.base import Provider
from agent.review import REVISE_PROMPT, ReviewReport

if TYPE_CHECKING:
    from research import ResearchResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunClock:
    """When a run started: the wall clock for the record, a monotonic one for its length."""

    started: float
    started_at: str

    @classmethod
    def start(cls) -> RunClock:
        return cls(
            started=time.perf_counter(),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )

    def wall_s(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def run_record(
    run: PreparedRun,
    provider: Provider,
    results: StageResults,
    stage: StageSettings,
    clock: RunClock,
) -> RunRecord:
    """The record of a finished run: every call once, the prompts, review scores and notes."""
    research, report, drafts = results.research, results.review, results.drafts
    calls = [*(research.calls if research is not None else []), *_all_calls(drafts, report)]
    return RunRecord(
        model=model_label(provider),
        template=run.template.name,
        template_version=run.template.version,
        prompts=prompt_versions(research=research is not None, review=report is not None),
        tdd_path=run.tdd.path,
        tdd_sha256=run.tdd.sha256,
        output_path=str(run.path) if run.path is not None else None,
        started_at=clock.started_at,
        wall_s=clock.wall_s(),
        shared_prefix=results.plan.shared_prefix,
        tdd_tokens=results.plan.tdd_tokens,
        calls=calls,
        totals=totals(calls),
        replayed_from=run.replayed_from,
        research=_research_summary(research),
        review=stage.review,
        review_scores=report.scores if report is not None else {},
        section_notes={d.section_id: d.notes for d in drafts if d.notes},
    )


def record_failure(
    error: BaseException,
    ledger: Ledger,
    run: PreparedRun,
    clock: RunClock,
    deadline: float | None,
) -> TidsmithError | None:
    """Save and attach the record of a run that raised `error`.

    The record goes beside the document (when there is one) and onto the
    exception as `run_record`: the CLI prints what was spent, and a library
    caller can read it too. Returns the error to raise instead when the run
    passed its deadline, else None (raise `error` itself).
    """
    failed = failed_record(error, ledger, run, clock)
    if run.path is not None:
        save_failed_record(run.path, failed)
    error.run_record = failed  # pyright: ignore[reportAttributeAccessIssue]
    if isinstance(error, TimeoutError) and deadline is not None:
        late = TidsmithError(
            f"the run passed --deadline {deadline:g}s and was stopped; "
            "raise --deadline, or use a faster model"
        )
        late.run_record = failed  # pyright: ignore[reportAttributeAccessIssue]
        return late
    return None


def failed_record(
    error: BaseException, ledger: Ledger, run: PreparedRun, clock: RunClock
) -> RunRecord:
    """The record of a run that did not finish: every call the provider was sent, as made."""
    interrupted = isinstance(error, KeyboardInterrupt | asyncio.CancelledError)
    return RunRecord(
        status="interrupted" if interrupted else "failed",
        error=redact(str(error))[:500] or type(error).__name__,
        model=model_label(ledger),
        template=run.template.name,
        template_version=run.template.version,
        prompts=prompt_versions(),
        tdd_path=run.tdd.path,
        tdd_sha256=run.tdd.sha256,
        output_path=None,
        started_at=clock.started_at,
        wall_s=clock.wall_s(),
        calls=list(ledger.records),
        totals=totals(ledger.records),
        replayed_from=run.replayed_from,
    )


def save_failed_record(path: Path, record: RunRecord) -> None:
    """Best effort: a record that cannot be written must not hide the run's own error."""
    try:
        write_json_atomic(run_record_path(path), record)
    except OSError:
        log.warning("could not write the failed run's record beside %s", path)


def _research_summary(research: ResearchResult | None) -> dict[str, Any] | None:
    if research is None:
        return None
    return {
        "key": research.key,
        "reused": research.reused,
        "notes": len(research.notes),
        "sources": [s.id for s in research.sources],
        "failures": research.failures,
        "warnings": research.warnings,
    }


def _all_calls(drafts: list[SectionDraft], report: ReviewReport | None) -> list[CallRecord]:
    """Every call once: drafts carry their revision calls, and so does the report."""
    if report is None:
        return [c for d in drafts for c in d.calls]
    drafted = [c for d in drafts for c in d.calls if c.prompt_id != REVISE_PROMPT]
    return [*drafted, *report.calls]
