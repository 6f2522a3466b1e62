"""The `check` and `update` commands: their flags and what they run.

Imported at `--help` time (through the parser), so the claim checker and the
update stage are imported inside the commands, when they run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_commands(commands: argparse._SubParsersAction, model_help: str) -> None:  # pyright: ignore[reportPrivateUsage]
    chk = commands.add_parser(
        "check",
        help="check a document's concrete claims against a codebase",
        description="Extract the concrete claims of one or more markdown documents (paths, "
        "modules, classes, functions and methods, imports, packages with versions, "
        "environment variables, configuration keys, HTTP endpoints, CLI commands and flags) "
        "and resolve each against the codebase with real parsers: found (file:line), new "
        "(the document says it creates it), drifted (another version, signature or place) "
        "or missing. Exit 1 when drifted or missing claims pass the thresholds, 2 for "
        "unusable input. See docs/check-and-update.md.",
    )
    chk.add_argument("docs", type=Path, nargs="+", metavar="DOC", help="markdown documents")
    chk.add_argument(
        "--codebase", type=Path, required=True, metavar="DIR", help="the codebase's root folder"
    )
    chk.add_argument(
        "--tdd", type=Path, help="the TDD: names it gives that the code lacks count as new"
    )
    chk.add_argument(
        "--format", choices=["text", "json", "sarif"], default="text", help="report format"
    )
    chk.add_argument(
        "--expect",
        choices=["built", "planned"],
        default="built",
        help="planned: the document was written before the code, so what is absent is new",
    )
    chk.add_argument("--max-drifted", type=int, default=0, metavar="N", help="allowed (default 0)")
    chk.add_argument("--max-missing", type=int, default=0, metavar="N", help="allowed (default 0)")
    chk.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report here")
    chk.add_argument("--all", action="store_true", help="text: list found claims too")
    chk.set_defaults(handler="agent.cli.drift:cmd_check")

    upd = commands.add_parser(
        "update",
        help="re-draft only the sections of a tidsmith document that a TDD change affects",
        description="Diff the TDD by heading against the one the document was generated from, "
        "map changed headings to the sections whose tdd_refs name them, re-draft only those "
        "(with the change in the prompt), keep every other section byte for byte, print the "
        "document diff and append the update to the run record. Sections edited by hand "
        "since generation are listed and kept unless --force-sections. See "
        "docs/check-and-update.md.",
    )
    upd.add_argument("doc", type=Path, help="a document tidsmith wrote")
    upd.add_argument("--tdd", type=Path, help="the TDD (default: the one it was generated from)")
    upd.add_argument(
        "--codebase", type=Path, metavar="DIR", help="also update sections whose claims drifted"
    )
    upd.add_argument("--dry-run", action="store_true", help="list sections and cost; call nothing")
    upd.add_argument(
        "--force-sections", action="store_true", help="re-draft hand-edited sections too"
    )
    upd.add_argument("-m", "--model", help=model_help)
    upd.add_argument("--base-url", help="an OpenAI- or Anthropic-compatible server's URL")
    upd.add_argument("--max-tokens", type=int, help="reply limit per section call")
    upd.add_argument("--timeout", type=float, help="seconds per model call (default 600)")
    upd.set_defaults(handler="agent.cli.drift:cmd_update")


def cmd_check(args: argparse.Namespace) -> int:
    # Lazy: the claim checker (parsers, pydantic) loads only for `check`.
    from agent.check import check_documents
    from agent.check.report import render
    from agent.core.write import write_atomic

    report = check_documents(
        args.docs, args.codebase, tdd=args.tdd, planned=args.expect == "planned"
    )
    text = render(report, args.format, show_found=args.all)
    if args.output is not None:
        write_atomic(args.output, text, force=True)
    else:
        sys.stdout.write(text)
    drifted, missing = report.count("drifted"), report.count("missing")
    if drifted > args.max_drifted or missing > args.max_missing:
        if args.output is not None or args.format != "text":
            print(
                f"tidsmith check: {drifted} drifted, {missing} missing "
                f"(allowed {args.max_drifted} and {args.max_missing})",
                file=sys.stderr,
            )
        return 1
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    # Lazy: the update stage (pipeline, providers) loads only for `update`.
    from agent.update.document import print_update, update_document

    result = update_document(
        args.doc,
        tdd=args.tdd,
        codebase=args.codebase,
        dry_run=args.dry_run,
        force_sections=args.force_sections,
        overrides={
            "model": args.model,
            "base_url": args.base_url,
            "max_tokens": args.max_tokens,
            "timeout": args.timeout,
        },
    )
    print_update(result)
    return 0
