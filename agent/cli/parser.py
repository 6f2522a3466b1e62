"""The argument parser: every command, its flags and their help, as one declarative table.

`build_parser` is the only function here allowed over 60 lines. It is built
for every run, `--help` included, so each command's handler is named as
"module:function" and imported only when that command runs (`agent.cli.main`);
this module imports argparse and the package version, never a command module,
the pipeline or a provider.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from agent.cli.drift import add_commands
from agent.core import __version__

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
        help="reply limit per section call (default 1800; 1600 on embedded models)",
    )
    gen.add_argument("--timeout", type=_SECONDS, help="seconds per model call (default 600)")
    gen.add_argument(
        "--deadline",
        type=_SECONDS,
        metavar="SECONDS",
        help="stop the whole run after this many seconds (its run record keeps what was spent)",
    )
    cassette = gen.add_mutually_exclusive_group()
    cassette.add_argument(
        "--record",
        type=Path,
        metavar="CASSETTE",
        help="record every HTTP exchange of the run into a vcrpy cassette (keys scrubbed)",
    )
    cassette.add_argument(
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
    gen.set_defaults(handler="agent.cli.generate:cmd_generate")

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
    rev.set_defaults(handler="agent.cli.review:cmd_review")

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
    ev.set_defaults(handler="agent.cli.evaluate:cmd_eval")

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
    bat.set_defaults(handler="agent.cli.batch:cmd_batch")
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
    chat.set_defaults(handler="agent.cli.front_ends:cmd_chat")
    ask.set_defaults(handler="agent.cli.front_ends:cmd_ask")

    tpl = commands.add_parser(
        "templates",
        help="list the built-in templates",
        description="List built-in templates, or validate and describe a template file.",
    )
    tpl.add_argument("path", nargs="?", type=Path, help="a template YAML to validate and show")
    _add_json_flag(tpl)
    tpl.set_defaults(handler="agent.cli.templates:cmd_templates")

    add_commands(commands, MODEL_HELP)

    mcp = commands.add_parser(
        "mcp",
        help="serve tidsmith to coding agents over MCP (stdio)",
        description="Run an MCP server on stdin/stdout with the tools generate, review, check, "
        "update and templates, and the built-in templates as resources. Claude Code, Cursor "
        "and VS Code start it themselves: see docs/mcp.md for their configuration. Relative "
        "paths are resolved against the folder the server starts in.",
    )
    mcp.set_defaults(handler="agent.cli.front_ends:cmd_mcp")
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
        "--draft-as",
        choices=["auto", "json", "markdown"],
        help="how each section is asked for: a JSON object, or markdown under its "
        "sub-headings read back by code (default auto: markdown on the embedded model, "
        "JSON elsewhere; docs/embedded.md)",
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


def _version() -> str:
    return f"tidsmith {__version__}"
