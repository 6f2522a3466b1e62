"""The `review` command: lints, TDD coverage and the optional model checklist, as
tables or JSON, with exit 0 (passes), 1 (fails review) or 3 (could not run).

Imported at `--help` time (through the parser), so the pipeline, the review
stage and rich are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.common import json_to_stdout, run_async, settings_from, table_width
from agent.cli.exits import CouldNotRun
from agent.core.errors import ConfigError, TidsmithError

if TYPE_CHECKING:
    from agent.pipeline.actions import ReviewedFile


def cmd_review(args: argparse.Namespace) -> int:
    # Lazy: the review pipeline (and its pydantic models) loads only when a review runs.
    from agent.pipeline.actions import review_file
    from agent.pipeline.summary import ReviewSummary, dumps, review_summary

    docs: list[Path] = args.doc
    to_stdout = _check_json_target(args, docs)
    summaries: list[ReviewSummary] = []
    status = 0
    for doc in docs:
        try:
            reviewed = run_async(
                review_file(
                    doc,
                    tdd=args.tdd,
                    template=args.template,
                    llm=args.llm,
                    settings=settings_from(args) if args.llm else None,
                    max_tokens=args.max_tokens,
                )
            )
        except TidsmithError as e:
            if e.exit_code != 1:
                raise
            # The model failed, not the document: CI must tell an outage from a bad TID.
            raise CouldNotRun(f"review could not run: {e}") from e
        if reviewed.report.errors():
            status = 1
        if to_stdout:
            summaries.append(review_summary(reviewed.report, document=doc, tdd=reviewed.tdd))
        else:
            _print_review(doc, reviewed, args.json, force=args.force)
    if to_stdout:
        # One document: its summary; several: a list of them.
        sys.stdout.write(dumps(summaries[0] if len(summaries) == 1 else summaries))
    return status


def _check_json_target(args: argparse.Namespace, docs: list[Path]) -> bool:
    """Refuse flags that do not fit several documents; True when JSON goes to stdout."""
    if len(docs) > 1 and args.tdd is not None:
        raise ConfigError("--tdd is for one document; without it each finds the TDD it links to")
    if len(docs) > 1 and args.json is not None and not json_to_stdout(args.json):
        raise ConfigError("--json PATH writes one document's report; use --json for several")
    to_stdout = json_to_stdout(args.json)
    if args.json is not None and not to_stdout:
        # Lazy: the file writer loads pydantic, which `--help` does without.
        from agent.core.write import check_output

        # Before any model call: never onto the document or the TDD, never over a file
        # without --force.
        check_output(args.json, args.force, "JSON report")
        if args.json.resolve() in {d.resolve() for d in docs}:
            raise ConfigError(f"--json {args.json} is the document under review; pick another")
    return to_stdout


def _print_review(
    doc: Path, reviewed: ReviewedFile, json_path: Path | None, *, force: bool = False
) -> None:
    # Lazy: rich, the writer and the review stage load only when a review is printed.
    from rich.console import Console
    from rich.table import Table

    from agent.core.write import write_json_atomic
    from agent.review import summary_lines

    report, tdd_path, template = reviewed.report, reviewed.tdd, reviewed.template
    console = Console(highlight=False, width=table_width())
    source = f"TDD {tdd_path}" if tdd_path is not None else "no TDD (coverage not checked)"
    console.print(f"{doc}: template {template.name} {template.version}, {source}")
    if report.lints:
        table = Table("severity", "lint", "section", "line", "message")
        for f in report.lints:
            if f.id == "coverage.orphan":
                continue  # listed once below, not one row each
            table.add_row(
                f.severity, f.id, f.section or f.where or "-", str(f.line or ""), f.message
            )
        if table.rows:
            console.print(table)
    if report.verdicts:
        table = Table("checklist item", "verdict", "section", "reason")
        for v in report.verdicts:
            table.add_row(v.item, v.status, v.section or "-", v.reason)
        console.print(table)
    if report.matrix:
        covered = len(report.matrix) - len(report.orphans)
        console.print(f"TDD coverage: {covered}/{len(report.matrix)} headings")
        if report.orphans:
            console.print("  not covered: " + "; ".join(report.orphans))
    # The first summary line holds the scores; the rest repeat the tables above.
    console.print(summary_lines(report)[0], markup=False)
    if json_path is not None:
        write_json_atomic(json_path, report, force=force)
