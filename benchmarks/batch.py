"""Batch scheduling against the fault-injecting server with a fixed per-call latency.

Usage: uv run --no-sync python benchmarks/batch.py [--latency 0.2] [--docs 50] [--concurrency 16]

Prints, in one run:
  (a) one document's wall time / its critical-path bound
      (first call + ceil((N-1)/C) calls, each `latency` long) - goal <= 1.10;
  (b) DOCS documents at C: achieved calls per second / ideal (C / latency) - goal >= 0.80;
  (c) the share of section-call input tokens inside the shared prefix (the
      system message every call of a document repeats byte for byte) - goal >= 0.85.
No model runs: the server answers schema-valid JSON after `latency` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.core.settings import Settings  # noqa: E402
from agent.core.templates import get_template  # noqa: E402
from agent.core.tokens import count_tokens  # noqa: E402
from agent.pipeline.batch import run_batch  # noqa: E402
from agent.pipeline.generate import run_generate  # noqa: E402
from agent.providers.openai import OpenAIProvider  # noqa: E402
from tests.faultserver import FaultServer  # noqa: E402

TDD = ROOT / "examples" / "0xcc" / "tdds" / "001_FTDD|Webhook_Delivery.md"


class Remote:
    """A FaultServer in a child process, so its work does not share our GIL."""

    def __init__(self, latency: float) -> None:
        ctx = mp.get_context("spawn")
        self._urls: Any = ctx.Queue()
        self._stats: Any = ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(
            target=_serve, args=(latency, self._urls, self._stats, self._stop), daemon=True
        )

    def __enter__(self) -> Remote:
        self._proc.start()
        self.base_url: str = self._urls.get(timeout=60)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.requests, self.max_in_flight, self.share = self._stats.get(timeout=60)
        self._proc.join(timeout=10)


def _serve(latency: float, urls: Any, stats: Any, stop: Any) -> None:
    count_tokens("load the encoding before the first request is timed")
    with FaultServer(latency=latency, lifetime_s=600) as server:
        urls.put(server.base_url)
        stop.wait(600)
        stats.put((server.requests, server.max_in_flight, prefix_share(server)))


def provider(server: FaultServer | Remote, concurrency: int) -> OpenAIProvider:
    return OpenAIProvider(
        "gpt-4.1-mini",
        api_key="bench",
        base_url=server.base_url,
        max_concurrency=concurrency,
        timeout=30,
    )


async def one_document(server: FaultServer | Remote, folder: Path, concurrency: int) -> float:
    p = provider(server, concurrency)
    try:
        started = time.perf_counter()
        await run_generate(
            folder / TDD.name,
            settings=Settings(concurrency=concurrency, review="off"),
            provider=p,
            out=folder / "one",
        )
        return time.perf_counter() - started
    finally:
        await p.aclose()


async def many_documents(
    server: FaultServer | Remote, paths: list[Path], concurrency: int
) -> float:
    p = provider(server, concurrency)
    try:
        result = await run_batch(
            paths,
            settings=Settings(concurrency=concurrency, review="off"),
            template=get_template("tid"),
            provider=p,
            out=paths[0].parent.parent / "many",
        )
        failed = [r for r in result.rows if r.status != "done"]
        if failed:
            raise SystemExit(f"{len(failed)} documents failed: {failed[0].reason}")
        return result.wall_s
    finally:
        await p.aclose()


def prefix_share(server: FaultServer) -> float:
    """Input tokens in each call's shared system message / all its input tokens."""
    shared = total = 0
    for body in server.bodies:
        tokens = [count_tokens(m["content"]) for m in body["messages"]]
        shared += sum(
            t for t, m in zip(tokens, body["messages"], strict=True) if m["role"] == "system"
        )
        total += sum(tokens)
    return shared / total


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="batch scheduling against the fault server")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--one-concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    sections = len(get_template("tid").sections)
    # Client CPU sits on the critical path (SDK, validation): a busy machine lowers (a) and (b).
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "0xcc" / "tdds"
        folder.mkdir(parents=True)
        text = TDD.read_text(encoding="utf-8")
        paths = []
        for i in range(1, args.docs + 1):
            path = folder / f"{i:03d}_FTDD|Webhook_Delivery_{i}.md"
            path.write_text(text.replace("Webhook Delivery", f"Webhook Delivery {i}"), "utf-8")
            paths.append(path)
        shutil.copy(TDD, folder / TDD.name)

        c1 = args.one_concurrency
        # Warm up first (token encoding, imports, schemas): the bound counts model time only.
        with FaultServer(latency=0.0, lifetime_s=600) as server:
            asyncio.run(one_document(server, folder, c1))
        shutil.rmtree(folder / "one")
        with Remote(args.latency) as server:
            wall = asyncio.run(one_document(server, folder, c1))
        share = server.share
        bound = args.latency * (1 + math.ceil((sections - 1) / c1))
        ratio_a = wall / bound
        print(
            f"(a) one document, N={sections} sections, C={c1}, latency {args.latency:g}s: "
            f"wall {wall:.3f}s / bound {bound:.3f}s = {ratio_a:.3f} "
            f"(goal <= 1.10: {'met' if ratio_a <= 1.10 else 'NOT met'})"
        )

        c = args.concurrency
        with Remote(args.latency) as server:
            wall = asyncio.run(many_documents(server, paths, c))
        calls, peak = server.requests, server.max_in_flight
        achieved = calls / wall
        ideal = c / args.latency
        ratio_b = achieved / ideal
        print(
            f"(b) {args.docs} documents, C={c}: {calls} calls in {wall:.2f}s = "
            f"{achieved:.1f} calls/s / ideal {ideal:.1f} = {ratio_b:.3f}, peak in flight {peak} "
            f"(goal >= 0.80: {'met' if ratio_b >= 0.80 else 'NOT met'})"
        )
        print(
            f"(c) shared-prefix share of section-call input tokens ({TDD.name}): {share:.3f} "
            f"(goal >= 0.85: {'met' if share >= 0.85 else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
