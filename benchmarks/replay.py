"""Replay speed: a recorded full TID run replayed offline vs. its recorded wall time.

Usage: uv run python benchmarks/replay.py [CASSETTE ...]

For each cassette it replays the run 5 times (a fresh process each time, so
start-up and imports count) and prints min/median/max wall seconds beside
the wall time the recorded run took, and their ratio. Goal: a full TID
replays in at most 3 s.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "0xcc"
TDD = "001_FTDD|Webhook_Delivery.md"
RUNS = 5


def replay_once(cassette: Path, template: str, extra: list[str]) -> float:
    """One replay in a fresh process, laid out as scripts/record-cassettes recorded it."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for folder in ("tdds", "prds", "adrs"):
            shutil.copytree(EXAMPLE / folder, work / "0xcc" / folder)
        shutil.copytree(ROOT / "tests" / "fixtures" / "research" / "codebase", work / "codebase")
        started = time.perf_counter()
        args = ["generate", f"0xcc/tdds/{TDD}", "-t", template, "-q", *extra]
        subprocess.run(
            [sys.executable, "-m", "agent", *args, "--replay", str(cassette)],
            check=True,
            capture_output=True,
            cwd=work,
        )
        return time.perf_counter() - started


def main(argv: list[str]) -> int:
    if argv and argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    cassettes = [Path(a).resolve() for a in argv] or sorted((ROOT / "cassettes").glob("*.yaml"))
    print(
        f"{'cassette':<26} {'recorded s':>10} {'replay min':>10} {'median':>8} {'max':>8} "
        f"{'speed-up':>9} {'<= 3 s':>7}"
    )
    for cassette in cassettes:
        meta = json.loads(cassette.with_name(cassette.name + ".meta.json").read_text())
        if "template" not in meta:
            continue  # not a generate run (chat-intent)
        # The research cassette was recorded with the fixture codebase as a source.
        extra = ["--codebase", "codebase"] if meta.get("research") else []
        times = [replay_once(cassette, meta["template"], extra) for _ in range(RUNS)]
        median = statistics.median(times)
        print(
            f"{cassette.name:<26} {meta['recorded_wall_s']:>10.1f} {min(times):>10.2f} "
            f"{median:>8.2f} {max(times):>8.2f} {meta['recorded_wall_s'] / median:>8.0f}x "
            f"{'yes' if median <= 3 else 'NO':>7}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
