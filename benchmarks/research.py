"""Research time for the nine miStudio TDDs, with a cold vs a warm docs index.

Usage: uv run --no-sync python benchmarks/research.py [CORPUS_0XCC_DIR]

For each TDD the research stage runs with related documents on and `--docs`
pointed at the whole corpus folder (PRDs, ADRs, TDDs, TIDs):

- cold: the bm25s docs index is deleted first, so the run builds it;
- warm: the index from the cold run is on disk and loaded;
- reuse: the saved research result is reused (what a rerun of the same TDD costs).

Each is the median of 3 runs in this process. The model is FakeProvider (no
network, no model): the planning reply is the code-built query plan for the
TDD and the notes are schema samples, so this measures the research plumbing
(reading, indexing, ranking, prompt building, caching), not model latency.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This file is named research.py: with its folder first on sys.path, `import
# research` would import this script instead of the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from agent.core.tdd import Tdd, load_tdd  # noqa: E402
from agent.core.templates import Template, get_template  # noqa: E402
from agent.notes.condense import fallback_queries  # noqa: E402
from agent.notes.run import run_research  # noqa: E402
from agent.providers.base import Request  # noqa: E402
from agent.providers.fake import FakeProvider, sample_instance  # noqa: E402
from research import ResearchConfig, build_sources  # noqa: E402
from research.docs import DocsSource  # noqa: E402

# The shared corpus beside the checkout; pass another 0xcc/ folder as the first argument.
CORPUS = (
    Path(sys.argv[1])
    if len(sys.argv) > 1
    else Path(__file__).resolve().parents[2] / "shared" / "corpus" / "mistudio" / "0xcc"
)
RUNS = 3


def provider_for(tdd: Tdd, template: Template, max_queries: int) -> FakeProvider:
    plan = {
        "queries": [
            {"text": q.text, "sections": q.sections[:3]}
            for q in fallback_queries(tdd, template, max_queries)
        ]
    }

    def reply(request: Request) -> str:
        if request.prompt_id == "research_queries":
            return json.dumps(plan)
        return json.dumps(sample_instance(request.json_schema, request.label))

    return FakeProvider(responder=reply)


async def once(
    tdd: Tdd, template: Template, config: ResearchConfig, index_root: Path, result_dir: Path | None
) -> tuple[float, str, int]:
    """Seconds for one research run, what the docs index did, and the notes made."""
    provider = provider_for(tdd, template, config.max_queries)
    started = time.perf_counter()
    sources = build_sources(tdd, config, cache_dir=index_root)
    result = await run_research(
        tdd,
        provider,
        template,
        sources,
        config=config,
        max_tokens=1800,
        cache_dir=result_dir,
    )
    elapsed = time.perf_counter() - started
    docs = next((s for s in sources if isinstance(s, DocsSource)), None)
    state = "reused" if result.reused else (docs.last_index if docs else "")
    if result.failures:
        raise SystemExit(f"a source failed: {result.failures[0]}")
    return elapsed, state, len(result.notes)


async def main(corpus: Path) -> int:
    tdds = sorted((corpus / "tdds").glob("*.md"))
    if not tdds:
        print(f"skipped: no TDDs under {corpus / 'tdds'} (the shared miStudio corpus is absent)")
        return 0
    template = get_template("tid")
    config = ResearchConfig(docs=[corpus])
    print("\n\n".join((__doc__ or "").split("\n\n")[2:4]).strip())
    print()
    print(f"model: FakeProvider (research plumbing only), docs: {corpus}, runs: median of {RUNS}")
    print(f"{'TDD':40} {'cold s':>8} {'warm s':>8} {'cold/warm':>10} {'reuse s':>9} notes")
    totals = [0.0, 0.0, 0.0]
    with tempfile.TemporaryDirectory() as tmp:
        index_root = Path(tmp) / "run"
        for path in tdds:
            tdd = load_tdd(path)
            cold, warm, reuse = [], [], []
            notes = 0
            for _ in range(RUNS):
                shutil.rmtree(index_root / "docs-index", ignore_errors=True)
                seconds, state, notes = await once(tdd, template, config, index_root, None)
                assert state == "built", state
                cold.append(seconds)
            for _ in range(RUNS):
                seconds, state, notes = await once(tdd, template, config, index_root, None)
                assert state == "loaded", state
                warm.append(seconds)
            result_dir = Path(tmp) / f"results-{path.stem[:3]}"
            await once(tdd, template, config, index_root, result_dir)  # saves the result
            for _ in range(RUNS):
                seconds, state, _n = await once(tdd, template, config, index_root, result_dir)
                assert state == "reused", state
                reuse.append(seconds)
            c, w, r = (statistics.median(x) for x in (cold, warm, reuse))
            totals = [totals[0] + c, totals[1] + w, totals[2] + r]
            print(f"{path.name[:40]:40} {c:8.3f} {w:8.3f} {c / w:9.1f}x {r:9.3f} {notes:5}")
    c, w, r = totals
    print(f"{'total (9 TDDs)':40} {c:8.3f} {w:8.3f} {c / w:9.1f}x {r:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS)))
