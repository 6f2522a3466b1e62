"""The command line: a thin layer over the library.

`main(argv) -> int` is testable without a subprocess. Errors we raise on
purpose print as one line and exit non-zero; set TIDSMITH_DEBUG=1 to see the
traceback instead. Heavy imports happen inside commands so `--help` is fast.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import ConfigError, TidsmithError
from agent.core.records import event_line
from agent.core.redact import clean

if TYPE_CHECKING:
    from agent.core.records import Event
    from agent.core.settings import Settings
    from agent.pipeline.actions import ReviewedFile
    from research import ResearchConfig

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


def _number(kind: type, low: float, *, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number of `kind`, at least (or above) `low`."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or (value == low and not inclusive):
            bound = f"at least {low:g}" if inclusive else f"more than {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: use {bound}")
        return value

    return parse


_POSITIVE_INT = _number(int, 1)
_SECONDS = _number(float, 0, inclusive=False)
_USD = _number(float, 0)


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
    _add_model_args(gen)
    gen.add_argument("--base-url", help="an OpenAI- or Anthropic-compatible server's URL")
    gen.add_argument("-o", "--out", type=Path, help="output file (.md) or folder")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gen.add_argument(
        "--safe-names",
        action="store_true",
        help="replace characters Windows forbids in file names (| becomes _)",
    )
    gen.add_argument(
        "--concurrency", type=_POSITIVE_INT, help="sections drafted at once (default 4)"
    )
    gen.add_argument(
        "--max-tokens",
        type=_POSITIVE_INT,
        help="reply limit per section call (default 1800; 1000 on embedded models)",
    )
    gen.add_argument("--timeout", type=_SECONDS, help="seconds per model call (default 600)")
    gen.add_argument(
        "--deadline",
        type=_SECONDS,
        metavar="SECONDS",
        help="stop the whole run after this many seconds (its run record keeps what was spent)",
    )
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
    _add_stage_args(gen)
    gen.add_argument("--stdout", action="store_true", help="also print the document")
    gen.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    _add_json_flag(gen)
    gen.set_defaults(handler=cmd_generate)

    rev = commands.add_parser(
        "review",
        help="check a TID or Spec: lints, TDD coverage, optional model checklist",
        description="Review any TID or Spec, generated or written by hand. By default only "
        "deterministic lints run (sections present and in order, code blocks parse, no "
        "placeholders, pinned versions, spec limits, TDD coverage), so no model is needed "
        "and the command can gate documents in CI. Exit status: 0 when no lint of severity "
        "error fails, 1 when one does (the document fails review), 2 for unusable input or "
        "settings, 3 when the review could not run (the model failed: an outage, not a verdict). "
        "--llm also asks the model to judge the template's checklist (reported, not part of "
        "the exit status).",
    )
    rev.add_argument(
        "doc",
        type=Path,
        nargs="+",
        help="the markdown document to review (several: each is reviewed, as a pre-commit "
        "hook passes them)",
    )
    rev.add_argument(
        "--tdd",
        type=Path,
        help="the TDD it was written from (default: the TDD the document links to, if found)",
    )
    rev.add_argument(
        "-t", "--template", help="tid (default; spec for *SPEC* files), spec, or a template YAML"
    )
    _add_json_flag(rev, report="the full review report")
    rev.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    rev.add_argument("--llm", action="store_true", help="also judge the checklist with a model")
    rev.add_argument("-m", "--model", help=MODEL_HELP)
    _add_model_args(rev)
    rev.add_argument("--base-url", help="an OpenAI- or Anthropic-compatible server's URL")
    rev.add_argument(
        "--max-tokens", type=_POSITIVE_INT, help="reply limit per review call (default 1200)"
    )
    rev.set_defaults(handler=cmd_review)

    ev = commands.add_parser(
        "eval",
        help="score documents over a corpus of TDDs and reference TIDs",
        description="Evaluate over a folder laid out like 0xcc/ (tdds/ and tids/, paired by "
        "number). Each document is reviewed and scored: sections present, code blocks that "
        "parse, checklist pass rate (from lints, or the model with --llm), TDD coverage, and "
        "entity recall against the reference TID (file paths, class and function names, "
        "packages and versions it names that ours names too). The documents are generated "
        "now with --generate (written to --docs, default ./tidsmith-eval/CORPUS; existing "
        "ones are reused unless --force), read from --docs (named NNN_FTID|Name.md), or "
        "else the reference documents themselves are checked against the template.",
    )
    ev.add_argument("corpus", type=Path, help="a folder with tdds/ and tids/")
    ev.add_argument("--docs", type=Path, metavar="DIR", help="our generated documents")
    ev.add_argument("--generate", action="store_true", help="generate each document first")
    ev.add_argument(
        "--force",
        action="store_true",
        help="with --generate: regenerate all; also overwrite an existing --json file",
    )
    ev.add_argument("--llm", action="store_true", help="judge the checklist with the model")
    ev.add_argument("-t", "--template", help="tid (default), spec, or a template YAML")
    ev.add_argument("-m", "--model", help=MODEL_HELP)
    _add_model_args(ev)
    ev.add_argument("--base-url", help="an OpenAI- or Anthropic-compatible server's URL")
    ev.add_argument("--max-tokens", type=_POSITIVE_INT, help="reply limit per section call")
    _add_json_flag(ev, report="the results")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    ev.set_defaults(handler=cmd_eval)

    bat = commands.add_parser(
        "batch",
        help="write a TID or Spec for every TDD in a folder",
        description="Write a document for every TDD in DIR (by default files named like "
        "001_FTDD|Name.md, else every *.md), under one limit of in-flight model calls shared "
        "by all documents and sections. Each validated section is checkpointed in "
        "<out>/.tidsmith/checkpoints/, so a rerun after a failure or Ctrl-C asks only for "
        "what is missing; a TDD whose document is up to date is skipped. Exit code: 0 when "
        "every document is done or skipped, 1 when any failed, 2 for bad input.",
    )
    bat.add_argument("dir", type=Path, help="the folder of TDD markdown files")
    bat.add_argument("--glob", help="which files are TDDs (default: NNN_*TDD*.md, else *.md)")
    bat.add_argument("-o", "--out", type=Path, help="output folder (default: a sibling tids/)")
    bat.add_argument("-t", "--template", help="tid (default), spec, or a path to a template YAML")
    bat.add_argument("-m", "--model", help=MODEL_HELP)
    _add_model_args(bat)
    bat.add_argument("--base-url", help="an OpenAI- or Anthropic-compatible server's URL")
    bat.add_argument(
        "--concurrency",
        type=_POSITIVE_INT,
        help="model calls in flight at once, all documents together",
    )
    bat.add_argument("--max-tokens", type=_POSITIVE_INT, help="reply limit per section call")
    bat.add_argument(
        "--timeout", type=_SECONDS, help="seconds per model call attempt (default 600)"
    )
    bat.add_argument("--deadline", type=_SECONDS, metavar="SECONDS", help="seconds per document")
    bat.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse checkpointed sections and skip up-to-date documents (default on)",
    )
    bat.add_argument("--force", action="store_true", help="replace documents that exist")
    bat.add_argument(
        "--safe-names", action="store_true", help="Windows-safe file names (| becomes _)"
    )
    bat.add_argument(
        "--dry-run",
        action="store_true",
        help="estimate tokens and cost with tiktoken; call no model",
    )
    bat.add_argument(
        "--max-cost",
        type=_USD,
        metavar="USD",
        help="start no document once spent + in-flight estimates would pass this",
    )
    pb = bat.add_argument_group(
        "provider batch",
        "Draft every section through the provider's batch API (OpenAI Batch, Anthropic "
        "Message Batches): half price, answered within 24 h. Valid replies are saved as "
        "checkpoints, then the documents are assembled as usual; research, what failed, review "
        "and revisions run live. The batch id is kept in <out>/.tidsmith/provider-batch.json, so "
        "after Ctrl-C or --batch-wait the same command resumes polling it (docs/batch.md).",
    )
    pb.add_argument(
        "--provider-batch", action="store_true", help="draft through the provider's batch API"
    )
    pb.add_argument(
        "--poll-interval",
        type=_SECONDS,
        default=60.0,
        metavar="SECONDS",
        help="seconds between status checks (default 60)",
    )
    pb.add_argument(
        "--batch-wait",
        type=_number(float, 0),
        metavar="SECONDS",
        help="stop waiting after this long, exit 75; the batch keeps running (default 25 h)",
    )
    _add_stage_args(bat)
    bat.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")
    _add_json_flag(bat)
    bat.set_defaults(handler=cmd_batch)
    chat = commands.add_parser(
        "chat",
        help="work on a TID or Spec in a conversation",
        description="An interactive session: ask in plain words ('Please create a TID for Data "
        "Export based on 0xcc/tdds/002_FTDD|Data_Export.md'), then /show, /revise a section, "
        "/diff, /undo and /save. /help lists the commands. When stdin is not a terminal, lines "
        "are read one request per line, so a session can be scripted.",
    )
    ask = commands.add_parser(
        "ask",
        help="one chat request that writes a document, then exit",
        description="Do what one chat request asks and exit: 'Please create a TID for Data "
        "Export based on 0xcc/tdds/002_FTDD|Data_Export.md' writes the TID like generate does. "
        "Exit 0 when written, 2 when the request names no usable TDD (or two match), 1 when "
        "the model fails.",
    )
    ask.add_argument("request", help="the request, in quotes")
    ask.add_argument("-o", "--out", type=Path, help="output file (.md) or folder")
    ask.add_argument("--force", action="store_true", help="overwrite an existing output file")
    _add_json_flag(ask)
    for sub in (chat, ask):
        sub.add_argument("-m", "--model", help=MODEL_HELP)
        _add_model_args(sub)
        sub.add_argument("-t", "--template", help="tid (default) or spec, unless the request says")
        sub.add_argument("--base-url", help="an OpenAI- or Anthropic-compatible server's URL")
        sub.add_argument(
            "--research", action="store_true", help="research before drafting, when available"
        )
    chat.set_defaults(handler=cmd_chat)
    ask.set_defaults(handler=cmd_ask)

    tpl = commands.add_parser(
        "templates",
        help="list the built-in templates",
        description="List built-in templates, or validate and describe a template file.",
    )
    tpl.add_argument("path", nargs="?", type=Path, help="a template YAML to validate and show")
    _add_json_flag(tpl)
    tpl.set_defaults(handler=cmd_templates)

    from agent.cli.drift import add_commands

    add_commands(commands, MODEL_HELP)

    mcp = commands.add_parser(
        "mcp",
        help="serve tidsmith to coding agents over MCP (stdio)",
        description="Run an MCP server on stdin/stdout with the tools generate, review, check, "
        "update and templates, and the built-in templates as resources. Claude Code, Cursor "
        "and VS Code start it themselves: see docs/mcp.md for their configuration. Relative "
        "paths are resolved against the folder the server starts in.",
    )
    mcp.set_defaults(handler=cmd_mcp)
    return parser


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    """How the model is asked: structured-output mode and reasoning effort."""
    parser.add_argument(
        "--structured",
        choices=["auto", "native", "json-schema", "grammar", "json-object", "schema-in-prompt"],
        help="how the model is asked for JSON (default auto: the API's native structured "
        "output, falling back where a server says it cannot; docs/providers.md)",
    )
    parser.add_argument(
        "--reasoning-effort",
        metavar="LEVEL",
        help="OpenAI reasoning models (gpt-5.x, o-series): minimal|none|low|medium|high, as "
        "the model offers (default: the model's own, or the table's)",
    )


def _add_json_flag(parser: argparse.ArgumentParser, report: str | None = None) -> None:
    """`--json`: the command's summary as JSON on stdout, with stable keys (docs/ci.md)."""
    if report is None:
        parser.add_argument(
            "--json",
            action="store_true",
            help="print the summary as JSON on stdout instead of text (stable keys)",
        )
        return
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        type=Path,
        metavar="PATH",
        help=f"with no PATH (or -): print the summary as JSON on stdout instead of tables; "
        f"with a PATH: also write {report} there as JSON",
    )


def _json_to_stdout(value: object) -> bool:
    """True when `--json` asks for JSON on stdout (a bare flag, or `-`)."""
    return value is True or (isinstance(value, Path) and str(value) == "-")


def _add_stage_args(parser: argparse.ArgumentParser) -> None:
    """--research and --review flags, shared by generate and batch."""
    research = parser.add_argument_group(
        "research (Option B)",
        "Research first: the TDD's PRD/ADR and project documents, and the sources below, "
        "condensed into cited notes that every section sees. More sources: [research] and "
        "[[research.mcp]] in tidsmith.toml (docs/research.md).",
    )
    research.add_argument(
        "--research", action="store_true", help="research before drafting; adds References"
    )
    research.add_argument(
        "--docs",
        type=Path,
        action="append",
        metavar="DIR",
        help="a folder of markdown/text docs to search (repeatable; implies --research)",
    )
    research.add_argument(
        "--codebase",
        type=Path,
        metavar="DIR",
        help="an existing codebase: its pinned versions and layout (implies --research)",
    )
    research.add_argument(
        "--project-root",
        type=Path,
        metavar="DIR",
        help="where files the TDD links may be read (default: the folder holding 0xcc/)",
    )
    research.add_argument(
        "--trust-config",
        action="store_true",
        help="run the MCP commands tidsmith.toml names without asking (docs/security.md)",
    )
    research.add_argument(
        "--strict-research",
        action="store_true",
        help="fail when a research source fails (default: warn and go on without it)",
    )
    review = parser.add_argument_group("review")
    review.add_argument(
        "--review",
        choices=["auto", "llm", "lint", "off"],
        help="llm: lints plus the model judges the checklist; lint: lints only; "
        "auto (default): llm, but lint on embedded models. Failing sections are re-drafted.",
    )
    review.add_argument(
        "--max-revisions",
        type=_number(int, 0),
        help="rounds of re-drafting failing sections (default 1; 0 on embedded models)",
    )
    review.add_argument(
        "--review-appendix", action="store_true", help="add a Review section to the document"
    )


def _research_from(args: argparse.Namespace) -> ResearchConfig | None:
    """The research config the flags ask for (plus tidsmith.toml's sources), or None."""
    if not (args.research or args.docs or args.codebase or args.strict_research):
        if getattr(args, "project_root", None) is not None:
            from agent.core.errors import ConfigError

            raise ConfigError("--project-root is for research; add --research")
        return None
    from research.config import load_research_config

    return load_research_config(
        docs=args.docs,
        codebase=args.codebase,
        strict=args.strict_research or None,
        project_root=args.project_root,
        trust=args.trust_config,
    )


def _version() -> str:
    from agent.core import __version__

    return f"tidsmith {__version__}"


# The flags that are settings; a command without one of them leaves it to the
# environment and tidsmith.toml.
_SETTING_FLAGS = (
    "model",
    "template",
    "concurrency",
    "max_tokens",
    "timeout",
    "base_url",
    "review",
    "max_revisions",
    "structured",
    "reasoning_effort",
)


def _settings_from(args: argparse.Namespace) -> Settings:
    """The command's settings: its flags, then the environment, tidsmith.toml, defaults."""
    from agent.core.settings import load_settings

    return load_settings({name: getattr(args, name, None) for name in _SETTING_FLAGS})


class _Progress:
    """Progress on stderr: a live line on a terminal, plain lines otherwise."""

    def __init__(self, sections: list[str], quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.sections = set(sections)
        self.total = len(sections)
        self.finished: set[str] = set()
        self.done = 0
        self.quiet = quiet
        self.status = None
        if not quiet and self.console.is_terminal:
            self.status = self.console.status("starting")
            self.status.start()

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        line = event_line(event)
        if event.kind == "done" and event.section in self.finished:
            line = line.replace(" drafted (", " re-drafted (", 1)
        elif event.kind == "done" and event.section in self.sections:
            self.finished.add(event.section)
            self.done = len(self.finished)
            line = f"[{self.done}/{self.total}] {line}"
        elif event.kind == "done":  # research steps
            line = f"{event.section}: done ({event.detail})" if event.detail else event.section
        # Server text (refusals, errors) may carry keys or terminal escape sequences.
        line = clean(line)
        if self.status is not None:
            if event.kind in {"done", "retry", "info"}:
                # Text, not markup: file names and ids hold [...] and :name: codes.
                self.console.log(line, markup=False, emoji=False)
            from rich.text import Text

            self.status.update(Text(f"{self.done}/{self.total} sections drafted; {line}"))
        else:
            self.console.print(line, markup=False, emoji=False)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()


def cmd_generate(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from agent.core.templates import get_template
    from agent.pipeline.generate import Recording, run_generate

    settings = _settings_from(args)
    template = get_template(settings.template)
    research = _research_from(args)
    recording = None
    if args.replay is not None:
        recording = Recording(path=args.replay, mode="replay")
    elif args.record is not None:
        recording = Recording(path=args.record, mode=args.record_mode)
    progress = _Progress([s.id for s in template.sections], args.quiet)
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
                research=research,
                review_appendix=args.review_appendix,
                deadline=args.deadline,
            )
        )
    finally:
        progress.stop()
    if args.json:
        from agent.pipeline.summary import dumps, generate_summary

        sys.stdout.write(dumps(generate_summary(doc)))
        return 0
    if args.stdout:
        sys.stdout.write(doc.markdown)
    if args.quiet and doc.research is not None:
        # Quiet hides progress, not a source that failed or a file left unread.
        for line in [*doc.research.failures, *doc.research.warnings]:
            print(f"tidsmith: warning: {clean(line)}", file=sys.stderr)
    t = doc.record.totals
    cost = "unknown price" if t.cost_usd is None else f"${t.cost_usd:.4f}"
    print(
        f"wrote {doc.path} in {time.perf_counter() - started:.1f}s "
        f"({len(doc.sections)} sections, {t.calls} calls, {t.input_tokens} input + "
        f"{t.output_tokens} output tokens, {t.cached_tokens} cached, {cost}; "
        f"model {doc.record.model})",
        file=sys.stderr if args.stdout else sys.stdout,
    )
    if doc.review is not None and not args.quiet:
        from agent.review import summary_lines

        for line in summary_lines(doc.review):
            print(line, file=sys.stderr)
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from agent.core.templates import builtin_names, get_template, load_template_file

    templates = (
        [load_template_file(args.path)]
        if args.path is not None
        else [get_template(n) for n in builtin_names()]
    )
    if args.json:
        from agent.pipeline.summary import dumps, template_summary

        sys.stdout.write(dumps([template_summary(t) for t in templates]))
        return 0
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


def _table_width() -> int | None:
    """Rich's own width on a terminal; logs and CI pipes get room for a findings table."""
    return None if sys.stdout.isatty() else 120


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def cmd_review(args: argparse.Namespace) -> int:
    import asyncio

    from agent.pipeline.actions import review_file
    from agent.pipeline.summary import ReviewSummary, dumps, review_summary

    docs: list[Path] = args.doc
    if len(docs) > 1 and args.tdd is not None:
        raise ConfigError("--tdd is for one document; without it each finds the TDD it links to")
    if len(docs) > 1 and args.json is not None and not _json_to_stdout(args.json):
        raise ConfigError("--json PATH writes one document's report; use --json for several")
    to_stdout = _json_to_stdout(args.json)
    if args.json is not None and not to_stdout:
        from agent.core.write import check_output

        # Before any model call: never onto the document or the TDD, never over a file
        # without --force.
        check_output(args.json, args.force, "JSON report")
        if args.json.resolve() in {d.resolve() for d in docs}:
            raise ConfigError(f"--json {args.json} is the document under review; pick another")
    summaries: list[ReviewSummary] = []
    status = 0
    for doc in docs:
        try:
            reviewed = asyncio.run(
                review_file(
                    doc,
                    tdd=args.tdd,
                    template=args.template,
                    llm=args.llm,
                    settings=_settings_from(args) if args.llm else None,
                    max_tokens=args.max_tokens,
                )
            )
        except TidsmithError as e:
            if e.exit_code != 1:
                raise
            # The model failed, not the document: CI must tell an outage from a bad TID.
            raise _CouldNotRun(f"review could not run: {e}") from e
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


def _print_review(
    doc: Path, reviewed: ReviewedFile, json_path: Path | None, *, force: bool = False
) -> None:
    from rich.console import Console
    from rich.table import Table

    from agent.core.write import write_json_atomic
    from agent.review import summary_lines

    report, tdd_path, template = reviewed.report, reviewed.tdd, reviewed.template
    console = Console(highlight=False, width=_table_width())
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


def cmd_eval(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from agent.core.templates import get_template
    from agent.core.write import check_output, write_json_atomic
    from agent.evaluate import KINDS, run_eval

    settings = _settings_from(args)
    template = get_template(settings.template)
    if args.json is not None:
        check_output(args.json, args.force, "JSON report")
    progress = _Progress([s.id for s in template.sections], args.quiet or not args.generate)
    try:
        report = asyncio.run(
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
    if _json_to_stdout(args.json):
        from agent.pipeline.summary import dumps

        sys.stdout.write(dumps(report))
        return 1 if any(r.error for r in report.rows) else 0
    console = Console(highlight=False, width=_table_width())
    what = {
        "generated": "documents generated now",
        "docs": f"our documents in {args.docs}",
        "reference": "the reference documents themselves (no --docs or --generate: "
        "lints only, no entity recall)",
    }[report.source]
    console.print(f"{args.corpus}: template {template.name}; evaluating {what}")
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
    console.print(table)
    if t["entity_recall"] is not None:
        console.print(
            "entity recall by kind: " + ", ".join(f"{k} {_pct(t[f'recall_{k}'])}" for k in KINDS)
        )
    if args.json is not None:
        write_json_atomic(args.json, report, force=args.force)
    return 1 if any(r.error for r in report.rows) else 0


def cmd_batch(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from agent.cli.batch_view import LiveView, PlainView, estimate_table, summary_table
    from agent.core.templates import get_template
    from agent.pipeline.batch import estimate_batch, expected_model_label, find_tdds, run_batch

    settings = _settings_from(args)
    template = get_template(settings.template)
    paths = find_tdds(args.dir, args.glob)
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if args.dry_run:
        estimates = estimate_batch(paths, template, settings)
        if args.json:
            from agent.pipeline.summary import dumps

            sys.stdout.write(dumps(estimates))
            return 0
        out.print(estimate_table(estimates, expected_model_label(settings.model)))
        return 0
    err = Console(stderr=True, highlight=False)
    if args.provider_batch:
        from agent.core.errors import ConfigError
        from agent.pipeline.provider_batch import (
            BatchPending,
            interrupted_message,
            run_provider_batch,
        )

        if args.max_cost is not None:
            raise ConfigError(
                "--max-cost cannot bound a provider batch (it is paid as one); "
                "check the cost with --dry-run (batches cost half), then drop --max-cost"
            )

        def said(line: str) -> None:
            if not args.quiet:
                err.print(line, markup=False, highlight=False, soft_wrap=True)

        try:
            asyncio.run(
                run_provider_batch(
                    paths,
                    settings=settings,
                    template=template,
                    out=args.out,
                    force=args.force,
                    safe_names=args.safe_names,
                    resume=args.resume,
                    research=_research_from(args),
                    poll_interval=args.poll_interval,
                    max_wait_s=args.batch_wait,
                    on_progress=said,
                )
            )
        except BatchPending as e:
            print(f"tidsmith: {e}", file=sys.stderr)
            return e.exit_code
        except KeyboardInterrupt:
            line = interrupted_message(paths, template, args.out, args.safe_names)
            print(f"tidsmith: {line}", file=sys.stderr)
            return 130
    view = None
    if not args.quiet:
        view = LiveView(err) if err.is_terminal else PlainView(err)
    try:
        result = asyncio.run(
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
                research=_research_from(args),
                review_appendix=args.review_appendix,
            )
        )
    except KeyboardInterrupt:
        print(
            "tidsmith: interrupted; finished documents and completed sections are saved: "
            "run the same command again to finish the rest",
            file=sys.stderr,
        )
        return 130
    finally:
        if view is not None:
            view.stop()
    if args.json:
        from agent.pipeline.summary import batch_summary, dumps

        sys.stdout.write(dumps(batch_summary(result)))
        return result.exit_code
    out.print(summary_table(result))
    if result.budget_stopped:
        out.print(f"stopped starting documents: --max-cost ${args.max_cost:g} would be exceeded")
    return result.exit_code


def cmd_mcp(args: argparse.Namespace) -> int:
    from agent.mcp_server import serve

    serve()
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from agent.chat.session import run_chat

    return run_chat(_settings_from(args), research=args.research)


def cmd_ask(args: argparse.Namespace) -> int:
    import asyncio

    from agent.chat.session import ask_once

    doc = asyncio.run(
        ask_once(
            args.request,
            _settings_from(args),
            out=args.out,
            force=args.force,
            research=args.research,
        )
    )
    if args.json:
        from agent.pipeline.summary import dumps, generate_summary

        sys.stdout.write(dumps(generate_summary(doc)))
        return 0
    t = doc.record.totals
    cost = "unknown price" if t.cost_usd is None else f"${t.cost_usd:.4f}"
    print(
        f"wrote {doc.path} ({len(doc.sections)} sections, {t.calls} calls, "
        f"{t.input_tokens} input + {t.output_tokens} output tokens, {cost}; "
        f"model {doc.record.model})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _terminate_cleanly()
    debug = os.environ.get("TIDSMITH_DEBUG") not in (None, "", "0")
    try:
        return int(args.handler(args))
    except TidsmithError as e:
        if debug:
            # The traceback is printed by the hook, scrubbed: SDK errors quote server bodies.
            sys.excepthook = _redacted_excepthook
            raise
        print(f"tidsmith: error: {clean(str(e))}", file=sys.stderr)
        _print_spent(e)
        return e.exit_code
    except OSError as e:
        if e.filename is None or debug:
            raise  # not about a path the user gave: a bug, with its traceback
        # A path the user gave that no check above caught: still one line, exit 2.
        from agent.core.files import os_error

        print(f"tidsmith: error: {clean(str(os_error(e.filename, e)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("tidsmith: interrupted; no document was written", file=sys.stderr)
        _print_spent(e)
        return 130


def _print_spent(error: BaseException) -> None:
    """What a run that did not finish had already spent (its run record holds every call)."""
    record = getattr(error, "run_record", None)
    totals = getattr(record, "totals", None)
    # Nothing billed (embedded, fake and replayed runs): the error line says it all.
    if totals is None or not totals.calls or totals.cost_usd == 0:
        return
    cost = "unknown cost" if totals.cost_usd is None else f"${totals.cost_usd:.4f}"
    print(
        f"tidsmith: spent before stopping: {totals.calls} calls, {totals.input_tokens} input + "
        f"{totals.output_tokens} output tokens, {cost}",
        file=sys.stderr,
    )


class _CouldNotRun(TidsmithError):
    """`review` could not reach a verdict (the model failed): exit 3, not 1."""

    exit_code = 3


def _redacted_excepthook(kind: type[BaseException], error: BaseException, tb: object) -> None:
    """TIDSMITH_DEBUG's traceback, with keys and terminal escapes scrubbed like any line."""
    import traceback

    text = "".join(traceback.format_exception(kind, error, tb))  # pyright: ignore[reportArgumentType]
    sys.stderr.write(clean(text))


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
