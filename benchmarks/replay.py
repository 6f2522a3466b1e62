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
TDD = ROOT / "examples" / "0xcc" / "tdds" / "001_FTDD|Webhook_Delivery.md"
RUNS = 5


def replay_once(cassette: Path, template: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "0xcc" / "tdds" / TDD.name
        work.parent.mkdir(parents=True)
        shutil.copy(TDD, work)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "agent",
                "generate",
                str(work),
                "-t",
                template,
                "-q",
                "--replay",
                str(cassette),
            ],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started


def main(argv: list[str]) -> int:
    cassettes = [Path(a) for a in argv] or sorted((ROOT / "cassettes").glob("*-tid.yaml"))
    print(
        f"{'cassette':<22} {'recorded s':>10} {'replay min':>10} {'median':>8} {'max':>8} "
        f"{'speed-up':>9} {'<= 3 s':>7}"
    )
    for cassette in cassettes:
        meta = json.loads(cassette.with_name(cassette.name + ".meta.json").read_text())
        times = [replay_once(cassette, meta["template"]) for _ in range(RUNS)]
        median = statistics.median(times)
        print(
            f"{cassette.name:<22} {meta['recorded_wall_s']:>10.1f} {min(times):>10.2f} "
            f"{median:>8.2f} {max(times):>8.2f} {meta['recorded_wall_s'] / median:>8.0f}x "
            f"{'yes' if median <= 3 else 'NO':>7}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
