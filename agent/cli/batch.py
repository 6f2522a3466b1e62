"""The `batch` command: every TDD in a folder, live or through a provider's batch API,
or only estimated with `--dry-run`.

Imported at `--help` time (through the parser), so the batch pipeline, its view
and rich are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.common import research_from, run_async, settings_from
from agent.cli.exits import INTERRUPTED
from agent.core.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from agent.core.settings import Settings
    from agent.core.templates import Template


def cmd_batch(args: argparse.Namespace) -> int:
    # Lazy: the batch pipeline (providers, SDKs) and rich load only when a batch runs.
    from rich.console import Console

    from agent.core.templates import get_template
    from agent.pipeline.batch import find_tdds

    settings = settings_from(args)
    template = get_template(settings.template)
    paths = find_tdds(args.dir, args.glob)
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if args.dry_run:
        return _dry_run(args, paths, template, settings, out)
    err = Console(stderr=True, highlight=False)
    if args.provider_batch:
        stopped = _provider_batch(args, paths, template, settings, err)
        if stopped is not None:
            return stopped
    # After a provider batch too: the documents are assembled from its checkpoints.
    return _live_batch(args, paths, template, settings, out, err)


def _dry_run(
    args: argparse.Namespace,
    paths: list[Path],
    template: Template,
    settings: Settings,
    out: Console,
) -> int:
    """`--dry-run`: the estimated tokens and cost, as a table or JSON; no model called."""
    # Lazy: the batch pipeline loads only when a batch runs.
    from agent.cli.batch_view import estimate_table
    from agent.pipeline.batch import estimate_batch, expected_model_label
    from agent.pipeline.summary import dumps

    estimates = estimate_batch(paths, template, settings)
    if args.json:
        sys.stdout.write(dumps(estimates))
        return 0
    out.print(estimate_table(estimates, expected_model_label(settings.model)))
    return 0


def _provider_batch(
    args: argparse.Namespace,
    paths: list[Path],
    template: Template,
    settings: Settings,
    err: Console,
) -> int | None:
    """`--provider-batch`: draft through the batch API; an exit code when it stops early."""
    # Lazy: the provider batch pipeline loads only with --provider-batch.
    from agent.pipeline.provider_batch import BatchPending, interrupted_message, run_provider_batch

    if args.max_cost is not None:
        raise ConfigError(
            "--max-cost cannot bound a provider batch (it is paid as one); "
            "check the cost with --dry-run (batches cost half), then drop --max-cost"
        )

    def print_progress(line: str) -> None:
        if not args.quiet:
            err.print(line, markup=False, highlight=False, soft_wrap=True)

    try:
        run_async(
            run_provider_batch(
                paths,
                settings=settings,
                template=template,
                out=args.out,
                force=args.force,
                safe_names=args.safe_names,
                resume=args.resume,
                research=research_from(args),
                poll_interval=args.poll_interval,
                max_wait_s=args.batch_wait,
                on_progress=print_progress,
            )
        )
    except BatchPending as e:
        print(f"tidsmith: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        line = interrupted_message(paths, template, args.out, args.safe_names)
        print(f"tidsmith: {line}", file=sys.stderr)
        return INTERRUPTED
    return None


def _live_batch(
    args: argparse.Namespace,
    paths: list[Path],
    template: Template,
    settings: Settings,
    out: Console,
    err: Console,
) -> int:
    """Write every document under one limit of calls in flight; the summary at the end."""
    # Lazy: the batch pipeline and its live view load only when a batch runs.
    from agent.cli.batch_view import LiveView, PlainView, summary_table
    from agent.pipeline.batch import run_batch
    from agent.pipeline.summary import batch_summary, dumps

    view = None
    if not args.quiet:
        view = LiveView(err) if err.is_terminal else PlainView(err)
    try:
        result = run_async(
            run_batch(
                paths,
                settings=settings,
                template=template,
                out=args.out,
                resume=args.resume,
                force=args.force,
                safe_names=args.safe_names,
                max_cost=args.max_cost,
                deadline_s=args.deadline,
                on_update=view,
                research=research_from(args),
                review_appendix=args.review_appendix,
            )
        )
    except KeyboardInterrupt:
        print(
            "tidsmith: interrupted; finished documents and completed sections are saved: "
            "run the same command again to finish the rest",
            file=sys.stderr,
        )
        return INTERRUPTED
    finally:
        if view is not None:
            view.stop()
    if args.json:
        sys.stdout.write(dumps(batch_summary(result)))
        return result.exit_code
    out.print(summary_table(result))
    if result.budget_stopped:
        out.print(f"stopped starting documents: --max-cost ${args.max_cost:g} would be exceeded")
    return result.exit_code
