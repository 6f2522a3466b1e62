"""The `generate` command: one TDD to a TID or Spec, with progress, recording or replay.

Imported at `--help` time (through the parser), so the pipeline, the progress
display (rich) and the review stage are imported inside the command, when it runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from agent.cli.common import research_from, run_async, settings_from
from agent.core.redact import clean

if TYPE_CHECKING:
    from agent.pipeline.generate import Document, Recording


def cmd_generate(args: argparse.Namespace) -> int:
    # Lazy: the pipeline (providers, SDKs) and rich load only when a document is written.
    from agent.cli.progress import TerminalProgress
    from agent.core.templates import get_template
    from agent.pipeline.generate import run_generate

    settings = settings_from(args)
    template = get_template(settings.template)
    research = research_from(args)
    recording = _recording(args)
    progress = TerminalProgress([s.id for s in template.sections], args.quiet)
    started = time.perf_counter()
    try:
        doc = run_async(
            run_generate(
                args.tdd,
                settings=settings,
                template=template,
                out=args.out,
                force=args.force,
                safe_names=args.safe_names,
                recording=recording,
                on_event=progress,
                research=research,
                review_appendix=args.review_appendix,
                deadline=args.deadline,
            )
        )
    finally:
        progress.stop()
    if args.json:
        # Lazy: like the pipeline above (the summaries are pydantic models).
        from agent.pipeline.summary import dumps, generate_summary

        sys.stdout.write(dumps(generate_summary(doc)))
        return 0
    if args.stdout:
        sys.stdout.write(doc.markdown)
    _print_written(doc, args, time.perf_counter() - started)
    return 0


def _recording(args: argparse.Namespace) -> Recording | None:
    """The cassette `--replay` answers from or `--record` records into, if any."""
    # Lazy: the pipeline loads only when a document is written.
    from agent.pipeline.generate import Recording

    if args.replay is not None:
        return Recording(path=args.replay, mode="replay")
    if args.record is not None:
        return Recording(path=args.record, mode=args.record_mode)
    return None


def _print_written(doc: Document, args: argparse.Namespace, seconds: float) -> None:
    """The research warnings a quiet run still shows, the "wrote" line, and the review."""
    if args.quiet and doc.research is not None:
        # Quiet hides progress, not a source that failed or a file left unread.
        for line in [*doc.research.failures, *doc.research.warnings]:
            print(f"tidsmith: warning: {clean(line)}", file=sys.stderr)
    t = doc.record.totals
    cost = "unknown price" if t.cost_usd is None else f"${t.cost_usd:.4f}"
    print(
        f"wrote {doc.path} in {seconds:.1f}s "
        f"({len(doc.sections)} sections, {t.calls} calls, {t.input_tokens} input + "
        f"{t.output_tokens} output tokens, {t.cached_tokens} cached, {cost}; "
        f"model {doc.record.model})",
        file=sys.stderr if args.stdout else sys.stdout,
    )
    if doc.review is not None and not args.quiet:
        # Lazy: the review stage loads only when a document is written.
        from agent.review import summary_lines

        for line in summary_lines(doc.review):
            print(line, file=sys.stderr)
