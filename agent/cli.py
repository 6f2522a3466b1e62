"""The command line: a thin layer over the library.

`main(argv) -> int` is testable without a subprocess. Errors we raise on
purpose print as one line and exit non-zero; set TIDSMITH_DEBUG=1 to see the
traceback instead. Heavy imports happen inside commands so `--help` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import TidsmithError

if TYPE_CHECKING:
    from agent.draft import Event

DESCRIPTION = """\
Turn a Technical Design Document (TDD) into a Technical Implementation
Document (TID) or a Technical Implementation Spec: one structured LLM call per
section, assembled and checked by code."""

MODEL_HELP = """\
provider:model id. openai:MODEL (with --base-url or OPENAI_BASE_URL: any
OpenAI-compatible server), anthropic:MODEL, local (embedded Qwen2.5-Coder 1.5B,
no key, no network), local:qwen-0.5b, local:smollm2, local:FILE.gguf, fake.
Default: OpenAI if OPENAI_API_KEY is set, else Anthropic if ANTHROPIC_API_KEY
is set, else local."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidsmith",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = commands.add_parser(
        "generate",
        help="write a TID or Spec from one TDD",
        description="Write a TID (or, with --template spec, an Implementation Spec) from a TDD. "
        "A TDD at 0xcc/tdds/002_FTDD|Name.md is written to 0xcc/tids/002_FTID|Name.md "
        "unless --out says otherwise; an existing file is never overwritten without --force.",
    )
    gen.add_argument("tdd", type=Path, help="the TDD markdown file")
    gen.add_argument("-t", "--template", help="tid (default), spec, or a path to a template YAML")
    gen.add_argument("-m", "--model", help=MODEL_HELP)
    gen.add_argument("--base-url", help="an OpenAI- or Anthropic-compatible server's URL")
    gen.add_argument("-o", "--out", type=Path, help="output file (.md) or folder")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gen.add_argument(
        "--safe-names",
        action="store_true",
        help="replace characters Windows forbids in file names (| becomes _)",
    )
    gen.add_argument("--concurrency", type=int, help="sections drafted at once (default 4)")
    gen.add_argument(
        "--max-tokens",
        type=int,
        help="reply limit per section call (default 1800; 1000 on embedded models)",
    )
    gen.add_argument("--timeout", type=float, help="seconds per model call (default 600)")
    tape = gen.add_mutually_exclusive_group()
    tape.add_argument(
        "--record",
        type=Path,
        metavar="CASSETTE",
        help="record every HTTP exchange of the run into a vcrpy cassette (keys scrubbed)",
    )
    tape.add_argument(
        "--replay",
        type=Path,
        metavar="CASSETTE",
        help="answer every model call from a recorded cassette: no network, no key, same document",
    )
    gen.add_argument(
        "--record-mode",
        choices=["new", "once", "append"],
        default="new",
        help="with --record: new (default; a fresh cassette, --force to replace one), "
        "once (record only if the cassette is missing), append (add unseen requests)",
    )
    gen.add_argument("--stdout", action="store_true", help="also print the document")
    gen.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    gen.set_defaults(handler=cmd_generate)

    # [review/eval commands]
    # [batch command]
    # [chat/ask commands]

    tpl = commands.add_parser(
        "templates",
        help="list the built-in templates",
        description="List built-in templates, or validate and describe a template file.",
    )
    tpl.add_argument("path", nargs="?", type=Path, help="a template YAML to validate and show")
    tpl.set_defaults(handler=cmd_templates)
    return parser


def _version() -> str:
    from agent import __version__

    return f"tidsmith {__version__}"


class _Progress:
    """Progress on stderr: a live line on a terminal, plain lines otherwise."""

    def __init__(self, total: int, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.status = None
        if not quiet and self.console.is_terminal:
            self.status = self.console.status("starting")
            self.status.start()

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if event.kind == "done":
            self.done += 1
            line = f"[{self.done}/{self.total}] {event.section} drafted ({event.detail})"
        elif event.kind == "start":
            line = f"drafting {event.section}"
        elif event.kind == "retry":
            line = f"{event.section}: invalid reply, asking again ({event.detail})"
        elif event.kind == "failed":
            line = f"{event.section}: failed"
        else:
            line = event.detail
        if self.status is not None:
            if event.kind in {"done", "retry", "info"}:
                self.console.log(line)
            self.status.update(f"{self.done}/{self.total} sections drafted; {line}")
        else:
            self.console.print(line)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()


def cmd_generate(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from agent.config import load_settings
    from agent.pipeline import Recording, run_generate
    from agent.templates import get_template

    settings = load_settings(
        {
            "model": args.model,
            "template": args.template,
            "concurrency": args.concurrency,
            "max_tokens": args.max_tokens,
            "timeout": args.timeout,
            "base_url": args.base_url,
        }
    )
    template = get_template(settings.template)
    recording = None
    if args.replay is not None:
        recording = Recording(path=args.replay, mode="replay")
    elif args.record is not None:
        recording = Recording(path=args.record, mode=args.record_mode)
    progress = _Progress(len(template.sections), args.quiet)
    started = time.perf_counter()
    try:
        doc = asyncio.run(
            run_generate(
                args.tdd,
                settings=settings,
                template=template,
                out=args.out,
                force=args.force,
                safe_names=args.safe_names,
                recording=recording,
                on_event=progress,
            )
        )
    finally:
        progress.stop()
    if args.stdout:
        sys.stdout.write(doc.markdown)
    t = doc.record.totals
    cost = "unknown price" if t.cost_usd is None else f"${t.cost_usd:.4f}"
    print(
        f"wrote {doc.path} in {time.perf_counter() - started:.1f}s "
        f"({len(doc.sections)} sections, {t.calls} calls, {t.input_tokens} input + "
        f"{t.output_tokens} output tokens, {t.cached_tokens} cached, {cost}; "
        f"model {doc.record.model})",
        file=sys.stderr if args.stdout else sys.stdout,
    )
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from agent.templates import builtin_names, get_template, load_template_file

    templates = (
        [load_template_file(args.path)]
        if args.path is not None
        else [get_template(n) for n in builtin_names()]
    )
    for t in templates:
        words = f", at most {t.max_words} words" if t.max_words else ""
        print(f"{t.name} {t.version}: {t.title}{words} ({t.source})")
        print(f"  {t.description}")
        for s in t.sections:
            number = t.number(s.id)
            label = f"{number}. {s.title}" if number is not None else s.title
            print(f"    {label}: " + ", ".join(p.title for p in s.parts))
        if t.checklist:
            print(f"  checklist: {len(t.checklist)} items")
    return 0


# [review/eval handlers]
# [batch handler]
# [chat/ask handlers]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _terminate_cleanly()
    debug = os.environ.get("TIDSMITH_DEBUG") not in (None, "", "0")
    try:
        return int(args.handler(args))
    except TidsmithError as e:
        if debug:
            raise
        print(f"tidsmith: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tidsmith: interrupted; nothing was written", file=sys.stderr)
        return 130


def _terminate_cleanly() -> None:
    """Make SIGTERM unwind like Ctrl-C, so servers stop and partial files are removed."""
    import signal
    import threading

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def run() -> None:
    sys.exit(main())
