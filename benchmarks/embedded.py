"""The embedded default on this machine: the engine's limits, then full runs, in one run.

Usage:
  uv run --no-sync python benchmarks/embedded.py [--model local] [--template tid]
      [--corpus DIR] [--docs example,002,largest] [--engine-only]
      [--server-arg=--cache --server-arg=false ...]
  uv run --no-sync python benchmarks/embedded.py --measure DOC.md [--tdd TDD.md]

Prints, in one run on one server:
  (a) the engine limit at the run's context length: prompt tokens/s (a fresh
      prefix, timed raw completions) and generation tokens/s (the same prompt,
      now cached, plain and under the section grammar); parallel slots;
  (b) per document, the README's first command (`tidsmith generate TDD`, the
      template's sections drafted and reviewed as the CLI does): wall, output
      tokens, words, prose paragraphs (and list items of 6+ words) that stop
      mid-sentence, python/json/yaml/toml code blocks that
      parse, TDD name coverage (the share of the TDD's CamelCase names and
      *.py/ts/tsx file names the document mentions), and
      wall / (uncached prompt tokens / prompt tok/s + output tokens / gen tok/s).
Documents: the example TDD; 002_FTDD|Model_Management and the largest TDD whose
whole text fits the model's window, from --corpus (skipped when it is absent).
Runs real models: minutes on SmolLM2, tens of minutes on Qwen 1.5B. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.core import markdown as md  # noqa: E402
from agent.core.settings import Settings  # noqa: E402
from agent.core.tdd import load_tdd, tdd_names  # noqa: E402
from agent.core.templates import get_template  # noqa: E402
from agent.document.assemble import unfence  # noqa: E402
from agent.document.intact import ends_cleanly  # noqa: E402
from agent.document.lints import code_blocks, code_error, count_words  # noqa: E402
from agent.draft.plan import plan_messages  # noqa: E402
from agent.draft.sections import section_schema  # noqa: E402
from agent.pipeline.generate import Document, run_generate  # noqa: E402
from agent.providers import serve_local  # noqa: E402
from agent.providers.fitting import char_budget, fit_schema  # noqa: E402
from agent.providers.grammar import json_schema_to_gbnf  # noqa: E402
from agent.providers.local import LocalServer, chars_per_token, server_command  # noqa: E402

EXAMPLE = ROOT / "examples" / "0xcc" / "tdds" / "001_FTDD|Webhook_Delivery.md"
CORPUS = Path("/work/shared/corpus/mistudio/0xcc/tdds")


# --- (a) the engine --------------------------------------------------------------------


async def _chat(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    began = time.perf_counter()
    reply = await client.post("/chat/completions", json=body, timeout=1800)
    reply.raise_for_status()
    return reply.json(), time.perf_counter() - began


async def engine_limits(server: LocalServer, template: str) -> dict[str, float]:
    """Prompt and generation tokens/s at the example run's context length."""
    tpl = get_template(template)
    tdd = load_tdd(EXAMPLE)

    class Sizing:
        context_window = server.context_window
        schema_in_text = False

    plan = plan_messages(tpl, tdd, Sizing(), max_tokens=1000, schema_in_text=False)  # type: ignore[arg-type]
    first = tpl.sections[0]
    system, user = plan.requests[first.id]
    budget = char_budget(1000, chars_per_token(server.model_name))
    grammar = json_schema_to_gbnf(fit_schema(section_schema(first)[1], budget))
    out: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as client:
        rates: list[float] = []
        fresh: list[dict[str, str]] = []
        reply: dict[str, Any] = {}
        for _ in range(2):
            # A fresh first line: nothing of this prompt is in the KV or prompt cache.
            fresh = [
                {"role": "system", "content": f"run {uuid.uuid4()}\n{system.content}"},
                {"role": "user", "content": user.content},
            ]
            body = {"model": server.model_name, "messages": fresh, "max_tokens": 1}
            reply, seconds = await _chat(client, body)
            rates.append(reply["usage"]["prompt_tokens"] / seconds)
        out["prompt_tokens"] = reply["usage"]["prompt_tokens"]
        out["prompt_tps"] = sum(rates) / len(rates)
        for name, extra in (("gen_tps", {}), ("grammar_gen_tps", {"grammar": grammar})):
            body = {
                "model": server.model_name,
                "messages": fresh,
                "max_tokens": 300,
                "temperature": 0.2,
                **extra,
            }
            reply, seconds = await _chat(client, body)
            out[name] = reply["usage"]["completion_tokens"] / seconds
    return out


# --- (b) documents -----------------------------------------------------------------------


def prose_paragraphs(markdown: str) -> list[tuple[str, bool]]:
    """Paragraphs and list items of prose, each with whether a code block follows it.

    No headings, fences, tables, notes or header. Blank lines between a
    paragraph and its code block (or the `File:` line before it) still count
    as leading into it.
    """
    body = markdown[markdown.find("\n## ") :] if "\n## " in markdown else markdown
    out: list[tuple[str, bool]] = []
    current: list[str] = []
    last_open = False  # out[-1] is the last thing before this line, blank lines aside

    def flush() -> None:
        nonlocal last_open
        if current:
            out.append((" ".join(current).strip(), False))
            current.clear()
            last_open = True

    def lead_in() -> None:
        nonlocal last_open
        flush()
        if last_open:
            out[-1] = (out[-1][0], True)
        last_open = False

    parsed = md.parse(body)
    starts = {f.line for f in parsed.fences}
    in_code = parsed.code_mask()
    for i, line in enumerate(parsed.lines):
        stripped = line.strip()
        # The parser's fences: a longer fence holds shorter ones a model wrote inside.
        if i in starts:
            lead_in()
        if in_code[i]:
            continue
        if stripped.startswith("File:"):
            lead_in()
            continue
        if not stripped:
            flush()
            continue
        if stripped.startswith(("|", ">")):
            # A table, or the note where a block was left out, after "…:".
            lead_in()
            continue
        if stripped.startswith(("#", "---")):
            flush()
            last_open = False
            continue
        if re.match(r"^([-*+]|\d+\.)\s", stripped):
            flush()
        last_open = False
        current.append(stripped)
    flush()
    return [(p, leads) for p, leads in out if p]


# A list item that opens with a route ("- POST /api/v1/events: Publish event;
# returns delivery IDs (202)") or a label ("- **Unit**:", "- Coverage:") is an
# entry. A route's entry, and a label's with no comma after the label, is whole
# without a full stop unless it ends open; a label's with a comma may be a
# sentence cut after a whole word ("- Integration: Test `Signer` against fixed
# vectors, outcome") and still counts as cut, unless every piece between its
# commas is a name or two ("- Levels: DEBUG, INFO, WARNING, ERROR, CRITICAL").
_ROUTE = re.compile(r"^(?:[-*+]|\d+\.)\s+`?(?:GET|POST|PUT|PATCH|DELETE)\s+/\S*`?\s*:")
_LABEL = re.compile(
    r"^(?:[-*+]|\d+\.)\s+(?:\*\*[^*]{1,60}\*\*|`[^`]{1,60}`|[A-Z][\w ./{}-]{0,60})"
    r"(?:\s*\([^)]{1,40}\))?\s*:"
)
# An entry of a list of sources, ending on its link or its citation ("[R1]").
_REFERENCE = re.compile(r"(?:\]\([^)]*\)|\[R\d+\])\s*$")
# Where a sentence cannot end: on a comma, an open bracket, a dash or a joining
# word ("… processing incoming events and,").
_ENDS_OPEN = re.compile(
    r"(?:[,;(\[{\u2013\u2014-]|\b(?:and|or|the|a|an|of|to|with|for|by|in|that|which))\s*$",
    re.IGNORECASE,
)


def _whole_entry(item: str) -> bool:
    """A route's, a source's or a short label's entry that does not end open."""
    if _ENDS_OPEN.search(item):
        return False
    if _ROUTE.match(item) or _REFERENCE.search(item):
        return True
    label = _LABEL.match(item)
    if label is None:
        return False
    pieces = item[label.end() :].split(",")
    return len(pieces) == 1 or all(len(p.split()) <= _NAME_WORDS for p in pieces)


# The words of one name in an enumeration ("Redis Streams", "GitHub Actions CI").
_NAME_WORDS = 3


def stops_mid_sentence(paragraph: str, leads_code: bool) -> bool:
    """Prose of six or more words that does not end a sentence.

    A short list item is a label ("- Test-first"), not a sentence that stops;
    an intro that ends in a colon before its code block, table or note ("… as
    follows:") ends; so does an entry (`_whole_entry`).
    """
    if len(paragraph.split()) < 6 or ends_cleanly(paragraph):
        return False
    if leads_code and paragraph.rstrip().endswith(":"):
        return False
    return not _whole_entry(paragraph)


def quality(markdown: str, tdd_text: str) -> dict[str, Any]:
    """What a document holds: words, cut paragraphs, code that parses, TDD names it uses."""
    found = prose_paragraphs(markdown)
    paragraphs = [p for p, _ in found]
    cut = [p for p, leads in found if stops_mid_sentence(p, leads)]
    blocks, _ = code_blocks(markdown, [])
    parsed = [b for b in blocks if code_error(b.language, "(") is not None]
    ok = [b for b in parsed if code_error(b.language, unfence(b.code)) is None]
    names = tdd_names(tdd_text)
    mentioned = {n for n in names if n in markdown}
    return {
        "words": count_words(markdown),
        "cut_paragraphs": f"{len(cut)}/{len(paragraphs)}",
        "code_parses": f"{len(ok)}/{len(parsed)}",
        "name_coverage": round(len(mentioned) / len(names), 2) if names else None,
        "cut_examples": [p[-60:] for p in cut[:3]],
    }


def measure(doc: Document, tdd_text: str, engine: dict[str, float]) -> dict[str, Any]:
    calls = doc.record.calls
    uncached = sum(c.input_tokens - c.cached_tokens for c in calls)
    output = sum(c.output_tokens for c in calls)
    bound = uncached / engine["prompt_tps"] + output / engine["gen_tps"]
    return {
        "wall_s": doc.record.wall_s,
        "calls": len(calls),
        "output_tokens": output,
        "uncached_prompt_tokens": uncached,
        "cached_tokens": sum(c.cached_tokens for c in calls),
        **quality(doc.markdown, tdd_text),
        "engine_ratio": round(doc.record.wall_s / bound, 2) if bound else None,
        "notes": doc.record.section_notes,
    }


def keep(folder: Path, stem: str, doc: Document) -> None:
    """The document and its run record, for reading what the numbers count."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.md").write_text(doc.markdown, encoding="utf-8")
    (folder / f"{stem}.run.json").write_text(doc.record.model_dump_json(indent=1), "utf-8")


def pick_documents(which: list[str], corpus: Path, window: int) -> list[Path]:
    docs: list[Path] = []
    for name in which:
        if name == "example":
            docs.append(EXAMPLE)
        elif not corpus.is_dir():
            print(f"  (no corpus at {corpus}: skipping {name})")
        elif name == "largest":
            # The largest TDD whose whole text leaves room for instructions and a reply.
            from agent.core.tokens import count_tokens

            fits = [
                p
                for p in corpus.glob("*.md")
                if count_tokens(p.read_text(encoding="utf-8")) < window - 3000
            ]
            if fits:
                docs.append(max(fits, key=lambda p: p.stat().st_size))
        else:
            docs.extend(sorted(corpus.glob(f"{name}_*.md"))[:1])
    return list(dict.fromkeys(docs))


async def run(args: argparse.Namespace) -> int:
    extra: list[str] = args.server_arg or []

    def command(model: Any, port: int) -> list[str]:
        return [*server_command(model, port), *extra]

    server = await LocalServer.start(args.model, progress=print, command=command)
    try:
        print(f"model: {server.display_name}, n_ctx {server.context_window}, server args {extra}")
        engine = await engine_limits(server, args.template)
        print(
            f"(a) engine at a {engine['prompt_tokens']:.0f}-token prompt: "
            f"prompt {engine['prompt_tps']:.1f} tok/s, generation {engine['gen_tps']:.1f} tok/s "
            f"(under the section grammar {engine['grammar_gen_tps']:.1f} tok/s); "
            "parallel slots: 1 (slots do not share the prompt prefix; docs/embedded.md)"
        )
        if args.engine_only:
            return 0
        provider = serve_local(server)
        rows = []
        for path in pick_documents(args.docs.split(","), Path(args.corpus), server.context_window):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "doc.md"
                settings = Settings(
                    template=args.template, review=args.review, draft_as=args.draft_as
                )
                doc = await run_generate(path, settings=settings, provider=provider, out=out)
                if args.keep:
                    keep(Path(args.keep), path.stem, doc)
            row = {"document": path.stem, **measure(doc, path.read_text("utf-8"), engine)}
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False))
        print()
        print(
            "| document | wall s | output tok | words | cut paragraphs | code parses "
            "| name coverage | engine ratio |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['document']} | {r['wall_s']:.0f} | {r['output_tokens']} | {r['words']} "
                f"| {r['cut_paragraphs']} | {r['code_parses']} | {r['name_coverage']} "
                f"| {r['engine_ratio']} |"
            )
    finally:
        await server.aclose()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--template", default="tid")
    parser.add_argument("--review", default="auto", help="as tidsmith generate --review")
    parser.add_argument(
        "--draft-as",
        default="auto",
        choices=["auto", "json", "markdown"],
        help="as tidsmith generate --draft-as",
    )
    parser.add_argument("--corpus", default=str(CORPUS))
    parser.add_argument("--docs", default="example,002,largest")
    parser.add_argument("--engine-only", action="store_true")
    parser.add_argument("--keep", metavar="DIR", help="write each document and run record here")
    parser.add_argument(
        "--measure",
        metavar="DOC",
        help="only measure a written document against the example TDD (or --tdd), no model",
    )
    parser.add_argument("--tdd", default=str(EXAMPLE), help="the TDD --measure compares with")
    parser.add_argument(
        "--server-arg", action="append", help="appended to the server's command line"
    )
    args = parser.parse_args(argv)
    if args.measure:
        markdown = Path(args.measure).read_text(encoding="utf-8")
        print(json.dumps(quality(markdown, Path(args.tdd).read_text(encoding="utf-8"))))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
