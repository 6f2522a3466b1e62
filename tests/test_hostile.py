"""Hostile input: every case is one error line and exit 2, with no traceback, no hang, no write.

Each case runs the real command in a subprocess bounded by a timeout, so a
blocking read (a FIFO) or an unbounded one (/dev/zero) fails the test instead
of hanging the suite or eating the machine's memory. The folder the case runs
in is listed before and after: nothing may be written or overwritten.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.draft.prompting import load_prompt

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
GOOD_TID = Path(__file__).parent / "fixtures" / "review" / "good_tid.md"
ROOT = Path(__file__).resolve().parent.parent
LONG = "x" * 300  # a path component over the 255-byte limit of every common file system

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, /dev/zero, symlinks")


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TIDSMITH_CACHE_DIR": str(cwd / ".cache"),
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
    }
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang is a failure, not a stuck suite
        stdin=subprocess.DEVNULL,
    )


def snapshot(folder: Path) -> dict[str, str]:
    """Every regular file under `folder` (but the cache) with its sha256."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if ".cache" in path.parts or path.is_symlink() or not path.is_file():
            continue
        found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _tdd(tmp: Path) -> Path:
    folder = tmp / "0xcc" / "tdds"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FIXTURE.name
    path.write_bytes(FIXTURE.read_bytes())
    return path


def _case_args(name: str, tmp: Path) -> list[str]:
    gen = ["generate", "-m", "fake", "--review", "off", "-q"]
    if name == "tdd-fifo":
        return [*gen, str(fifo(tmp / "t.md"))]
    if name == "tdd-device":
        return [*gen, "/dev/zero"]
    if name == "tdd-symlink-loop":
        (tmp / "a.md").symlink_to(tmp / "b.md")
        (tmp / "b.md").symlink_to(tmp / "a.md")
        return [*gen, str(tmp / "a.md")]
    if name == "tdd-long-name":
        return [*gen, str(tmp / f"{LONG}.md")]
    if name == "out-long-name":
        return [*gen, str(_tdd(tmp)), "--out", str(tmp / f"{LONG}.md")]
    if name == "tdd-folder":
        return [*gen, str(tmp)]
    if name in ("tdd-utf16-le", "tdd-utf16-be"):
        codec = "utf-16-le" if name.endswith("le") else "utf-16-be"
        bom = codecs.BOM_UTF16_LE if name.endswith("le") else codecs.BOM_UTF16_BE
        path = tmp / "t.md"
        path.write_bytes(bom + FIXTURE.read_text(encoding="utf-8").encode(codec))
        return [*gen, str(path)]
    if name == "tdd-headings-only":
        path = tmp / "t.md"
        path.write_text("# Title\n\n## Architecture\n\n## Data Model\n\n### Tables\n", "utf-8")
        return [*gen, str(path)]
    if name == "tdd-huge":
        path = tmp / "t.md"
        path.write_bytes(b"# T\n\n" + b"x" * (3 * 1024 * 1024))
        return [*gen, str(path)]
    if name == "tdd-binary":
        path = tmp / "t.md"
        path.write_bytes(b"# T\n\x00\x01\x02\xff")
        return [*gen, str(path)]
    if name == "out-is-the-tdd":
        tdd = _tdd(tmp)
        return [*gen, str(tdd), "--out", str(tdd), "--force"]
    if name == "out-is-a-hard-link-to-the-tdd":
        tdd = _tdd(tmp)
        os.link(tdd, tmp / "linked.md")
        return [*gen, str(tdd), "--out", str(tmp / "linked.md"), "--force"]
    if name == "template-folder":
        return [*gen, str(_tdd(tmp)), "--template", str(tmp)]
    if name == "template-fifo":
        return [*gen, str(_tdd(tmp)), "--template", str(fifo(tmp / "t.yaml"))]
    if name == "templates-device":
        return ["templates", "/dev/zero"]
    if name == "templates-folder":
        return ["templates", str(tmp)]
    if name == "record-into-folder":
        (tmp / "tape").mkdir()
        return [*gen, str(_tdd(tmp)), "--record", str(tmp / "tape"), "--force"]
    if name in ("replay-truncated", "replay-binary"):
        tape = tmp / "tape.yaml"
        cassette = ROOT / "cassettes" / "openai-tid.yaml"
        data = cassette.read_bytes()
        tape.write_bytes(data[: len(data) // 3] if name.endswith("truncated") else b"\x00\xff" * 64)
        # Metadata that matches this TDD and today's prompts: only the YAML is wrong.
        tdd = _tdd(tmp)
        meta = json.loads((ROOT / "cassettes" / "openai-tid.yaml.meta.json").read_text("utf-8"))
        meta["tdd_sha256"] = hashlib.sha256(tdd.read_bytes()).hexdigest()
        meta["prompts"] = {k: load_prompt(k).version for k in meta["prompts"]}
        (tmp / "tape.yaml.meta.json").write_text(json.dumps(meta), "utf-8")
        return ["generate", str(tdd), "--replay", str(tape), "-q"]
    if name == "review-fifo":
        return ["review", str(fifo(tmp / "d.md"))]
    if name == "review-device":
        return ["review", "/dev/zero"]
    if name == "review-huge":
        path = tmp / "d.md"
        path.write_bytes(b"# T\n\n" + b"word " * (600 * 1024))
        return ["review", str(path)]
    if name == "review-utf16":
        path = tmp / "d.md"
        path.write_bytes(codecs.BOM_UTF16_LE + GOOD_TID.read_text("utf-8").encode("utf-16-le"))
        return ["review", str(path)]
    if name == "review-long-name":
        return ["review", str(tmp / f"{LONG}.md")]
    if name == "review-symlink-loop":
        (tmp / "a.md").symlink_to(tmp / "a.md")
        return ["review", str(tmp / "a.md")]
    if name == "review-json-onto-the-document":
        doc = tmp / "d.md"
        doc.write_bytes(GOOD_TID.read_bytes())
        return ["review", str(doc), "--json", str(doc), "--force"]
    if name == "review-json-onto-a-file":
        doc = tmp / "d.md"
        doc.write_bytes(GOOD_TID.read_bytes())
        (tmp / "report.json").write_text("keep me\n")
        return ["review", str(doc), "--json", str(tmp / "report.json")]
    if name == "eval-json-onto-a-file":
        corpus = tmp / "corpus"
        (corpus / "tdds").mkdir(parents=True)
        (corpus / "tids").mkdir()
        (tmp / "report.json").write_text("keep me\n")
        return ["eval", str(corpus), "--json", str(tmp / "report.json"), "-q"]
    if name == "batch-long-name":
        return ["batch", str(tmp / LONG), "-m", "fake"]
    if name in ("nan-deadline", "negative-max-cost", "nan-max-cost", "zero-deadline"):
        # A folder with a TDD in it: only the flag's value can make this exit 2.
        flag, value = {
            "nan-deadline": ("--deadline", "nan"),
            "negative-max-cost": ("--max-cost", "-1"),
            "nan-max-cost": ("--max-cost", "nan"),
            "zero-deadline": ("--deadline", "0"),
        }[name]
        return ["batch", str(_tdd(tmp).parent), "-m", "fake", "--review", "off", flag, value]
    raise AssertionError(name)


CASES = [
    "tdd-fifo",
    "tdd-device",
    "tdd-symlink-loop",
    "tdd-long-name",
    "out-long-name",
    "tdd-folder",
    "tdd-utf16-le",
    "tdd-utf16-be",
    "tdd-headings-only",
    "tdd-huge",
    "tdd-binary",
    "out-is-the-tdd",
    "out-is-a-hard-link-to-the-tdd",
    "template-folder",
    "template-fifo",
    "templates-device",
    "templates-folder",
    "record-into-folder",
    "replay-truncated",
    "replay-binary",
    "review-fifo",
    "review-device",
    "review-huge",
    "review-utf16",
    "review-long-name",
    "review-symlink-loop",
    "review-json-onto-the-document",
    "review-json-onto-a-file",
    "eval-json-onto-a-file",
    "batch-long-name",
    "nan-deadline",
    "negative-max-cost",
    "nan-max-cost",
    "zero-deadline",
]


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, case: str) -> None:
    args = _case_args(case, tmp_path)
    before = snapshot(tmp_path)

    out = run(args, tmp_path)

    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    # argparse prints its usage first; our own errors are exactly one line.
    assert lines and "error:" in lines[-1], out.stderr
    if not args[0].startswith("-") and "usage:" not in out.stderr:
        assert len(lines) == 1, out.stderr
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.rglob("*.tmp")]


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("tdd-symlink-loop", "symlink loop"),
        ("tdd-fifo", "not a regular file"),
        ("tdd-utf16-le", "UTF-16"),
        ("tdd-headings-only", "no text under them"),
        ("out-is-the-tdd", "input of this run"),
        ("review-huge", "2 MB"),
        ("tdd-long-name", "too long"),
        ("replay-truncated", "not a valid recording"),
    ],
)
def test_the_line_names_the_problem(tmp_path: Path, case: str, words: str) -> None:
    out = run(_case_args(case, tmp_path), tmp_path)
    assert words in out.stderr


def test_a_fifo_or_device_inside_docs_is_skipped_not_read(tmp_path: Path) -> None:
    tdd = _tdd(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "real.md").write_text("# Exports\n\nExports are paginated.\n", "utf-8")
    fifo(docs / "stuck.md")
    (docs / "zero.md").symlink_to("/dev/zero")

    out = run(
        ["generate", str(tdd), "-m", "fake", "--review", "off", "--docs", str(docs), "-q"],
        tmp_path,
    )

    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr


def _generate(tmp: Path, extra: list[str]) -> Callable[[], subprocess.CompletedProcess[str]]:
    return lambda: run(["generate", str(_tdd(tmp)), "-m", "fake", "-q", *extra], tmp)


def test_unnumbered_tdds_in_one_batch_get_distinct_numbers(tmp_path: Path) -> None:
    folder = tmp_path / "designs"
    folder.mkdir()
    text = FIXTURE.read_text(encoding="utf-8").replace("001_FTDD|Billing_Export", "Billing")
    for name in ("alpha", "beta", "gamma"):
        (folder / f"{name}.md").write_text(text.replace("Billing Export", name), "utf-8")

    out = run(["batch", str(folder), "-m", "fake", "--review", "off", "-q"], tmp_path)

    assert out.returncode == 0, out.stdout + out.stderr
    written = sorted(p.name[:4] for p in (tmp_path / "designs" / "tids").glob("*.md"))
    assert written == ["001_", "002_", "003_"]


def test_a_checkpoint_write_failure_fails_that_document_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import errno

    from agent.core.settings import Settings
    from agent.core.templates import get_template
    from agent.pipeline.batch import find_tdds, run_batch
    from agent.providers.fake import FakeProvider

    folder = tmp_path / "0xcc" / "tdds"
    folder.mkdir(parents=True)
    for i, name in enumerate(["Billing_Export", "Audit_Log"], 1):
        text = FIXTURE.read_text(encoding="utf-8").replace("Billing Export", name)
        (folder / f"{i:03d}_FTDD|{name}.md").write_text(text, encoding="utf-8")
    real_fdopen = os.fdopen

    def full_disk(fd: int, *args: object, **kwargs: object) -> object:
        # The disk is full for the first document's checkpoints only.
        if "checkpoints/001_" in str(Path(f"/proc/self/fd/{fd}").readlink()):
            os.close(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fdopen", full_disk)
    result = asyncio.run(
        run_batch(
            find_tdds(folder),
            settings=Settings(review="off"),
            template=get_template("tid"),
            provider=FakeProvider(),
        )
    )

    assert [r.status for r in result.rows] == ["failed", "done"]
    assert "No space left" in result.rows[0].reason and "\n" not in result.rows[0].reason
    assert result.exit_code == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_review_tells_a_failing_document_from_a_failing_model(tmp_path: Path) -> None:
    from tests.faultserver import Fault, FaultServer

    bad = tmp_path / "bad.md"
    bad.write_text("# A TID\n\n## Nothing\n\nTODO\n", encoding="utf-8")
    assert run(["review", str(bad)], tmp_path).returncode == 1  # the document fails review

    good = tmp_path / "good.md"
    good.write_bytes(GOOD_TID.read_bytes())
    with FaultServer(faults=[Fault("401")] * 10) as server:
        args = ["review", str(good), "--llm", "-m", "openai:gpt-4.1-mini"]
        out = run([*args, "--base-url", server.base_url], tmp_path)
    assert out.returncode == 3, out.stderr  # the review could not run
    assert "could not run" in out.stderr and "Traceback" not in out.stderr
