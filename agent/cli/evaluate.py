"""The `eval` command: score documents over a corpus, as a table or JSON.

Imported at `--help` time (through the parser), so the evaluation (pipeline,
review stage), the progress display and rich are imported inside the command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.common import json_to_stdout, run_async, settings_from, table_width

if TYPE_CHECKING:
    from rich.table import Table

    from agent.core.templates import Template
    from agent.evaluate import EvalReport


def cmd_eval(args: argparse.Namespace) -> int:
    # Lazy: the evaluation runs the pipeline (providers, SDKs) and rich: only for `eval`.
    from agent.cli.progress import TerminalProgress
    from agent.core.templates import get_template
    from agent.core.write import check_output, write_json_atomic
    from agent.evaluate import run_eval
    from agent.pipeline.summary import dumps

    settings = settings_from(args)
    template = get_template(settings.template)
    if args.json is not None:
        check_output(args.json, args.force, "JSON report")
    progress = TerminalProgress([s.id for s in template.sections], args.quiet or not args.generate)
    try:
        report = run_async(
            run_eval(
                args.corpus,
                template,
                settings=settings,
                docs=args.docs,
                generate=args.generate,
                force=args.force,
                llm=args.llm,
                on_event=progress,
            )
        )
    finally:
        progress.stop()
    status = 1 if any(r.error for r in report.rows) else 0
    if json_to_stdout(args.json):
        sys.stdout.write(dumps(report))
        return status
    _print_eval(args, template, report)
    if args.json is not None:
        write_json_atomic(args.json, report, force=args.force)
    return status


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _print_eval(args: argparse.Namespace, template: Template, report: EvalReport) -> None:
    """What was evaluated, a row per document with the totals, and recall by kind."""
    # Lazy: rich loads only when results are printed.
    from rich.console import Console

    from agent.evaluate import KINDS

    console = Console(highlight=False, width=table_width())
    what = {
        "generated": "documents generated now",
        "docs": f"our documents in {args.docs}",
        "reference": "the reference documents themselves (no --docs or --generate: "
        "lints only, no entity recall)",
    }[report.source]
    console.print(f"{args.corpus}: template {template.name}; evaluating {what}")
    console.print(_eval_table(report))
    t = report.totals
    if t["entity_recall"] is not None:
        console.print(
            "entity recall by kind: " + ", ".join(f"{k} {_pct(t[f'recall_{k}'])}" for k in KINDS)
        )


def _eval_table(report: EvalReport) -> Table:
    """A row per document, then the totals."""
    # Lazy: rich loads only when results are printed.
    from rich.table import Table

    table = Table("#", "document", "sections", "code ok", "errors", "checklist", "coverage")
    table.add_column("recall")
    for r in report.rows:
        name = Path(r.document).name if r.document else Path(r.tdd).name
        if r.error:
            table.add_row(r.number, name, "", "", "", "", "", f"error: {r.error}")
            continue
        table.add_row(
            r.number,
            name,
            r.sections,
            r.code_blocks,
            str(r.lint_errors),
            _pct(r.checklist_pass_rate),
            _pct(r.tdd_coverage),
            _pct(r.entity_recall),
        )
    t = report.totals
    table.add_row(
        "",
        "totals (mean; recall pooled)",
        _pct(t["sections_present"]),
        _pct(t["code_blocks_parse"]),
        str(int(t["lint_errors"] or 0)),
        _pct(t["checklist_pass_rate"]),
        _pct(t["tdd_coverage"]),
        _pct(t["entity_recall"]),
    )
    return table
