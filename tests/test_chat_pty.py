"""One real terminal session: `python -m agent chat -m fake` driven through a pty by pexpect."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parent.parent
CORPUS_TDD = (
    ROOT.parent
    / "shared"
    / "corpus"
    / "mistudio"
    / "0xcc"
    / "tdds"
    / "002_FTDD|Model_Management.md"
)
FIXTURE_TDD = ROOT / "tests" / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
PROMPT = "tidsmith>"  # prompt_toolkit draws the space as a cursor move


@pytest.mark.skipif(sys.platform == "win32", reason="pexpect.spawn needs a POSIX pty")
def test_a_terminal_session_from_request_to_saved_file(tmp_path: Path) -> None:
    # A TDD from the team's own corpus when this checkout has it, else the fixture.
    source = CORPUS_TDD if CORPUS_TDD.is_file() else FIXTURE_TDD
    tdds = tmp_path / "0xcc" / "tdds"
    tdds.mkdir(parents=True)
    shutil.copy(source, tdds / source.name)
    number, feature = source.stem.split("_FTDD|")
    words = feature.replace("_", " ")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TIDSMITH_DATA_DIR": str(tmp_path / "data"),
        # No terminal answers cursor-position requests here; do not wait for one.
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "TERM": "xterm",
        "COLUMNS": "120",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "agent", "chat", "-m", "fake"],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=30,
    )
    transcript: list[str] = []
    try:
        child.expect_exact("Ask for a document, or /help.")
        child.expect_exact(PROMPT)
        request = (
            f"Please create a Technical Implementation Document (TID) for {words} "
            f"based on 0xcc/tdds/{source.name}."
        )
        child.sendline(request)
        child.expect_exact("[10/10]")
        child.expect_exact(f"drafted the TID for {words}: 10 sections")
        child.expect_exact(PROMPT)
        transcript.append(str(child.before))
        # Tab completes a command: "/he" becomes /help.
        child.send("/he\t")
        child.send("\r")
        child.expect_exact("/revise SECTION INSTRUCTION")
        child.expect_exact(PROMPT)
        child.sendline("/show 2")
        child.expect_exact("Code Structure")
        child.expect_exact("Key Class Definitions")
        child.expect_exact(PROMPT)
        child.sendline("/revise 2 add the test utilities")
        # The fake model answers a revision with the same schema sample, so the
        # section comes back unchanged; a real model's change shows as a diff.
        child.expect_exact("re-drafted 2. Code Structure")
        child.expect_exact(PROMPT)
        child.sendline("/diff")
        child.expect(r"no differences|nothing to compare|--- before")
        child.expect_exact(PROMPT)
        child.sendline("/save")
        child.expect_exact("saved")
        child.expect_exact(PROMPT)
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, transcript
    written = tmp_path / "0xcc" / "tids" / f"{number}_FTID|{feature}.md"
    text = written.read_text(encoding="utf-8")
    assert text.startswith(f"# Technical Implementation Document: {words}")
    assert f"(../tdds/{source.name})" in text
    # History persists across sessions in the user data folder.
    history = (tmp_path / "data" / "chat_history").read_text(encoding="utf-8")
    assert request in history
    assert "/save" in history


# The fake model made slow, so that a draft is still running when Ctrl-C arrives.
SLOW_FAKE = """
import sys
from agent.providers import fake
_init = fake.FakeProvider.__init__
def slow(self, *args, **kw):
    _init(self, *args, **kw)
    self._delay = 30.0
fake.FakeProvider.__init__ = slow
from agent.cli.main import main
sys.exit(main(["chat", "-m", "fake"]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="pexpect.spawn needs a POSIX pty")
def test_ctrl_c_in_the_terminal_cancels_the_draft_and_keeps_the_session(tmp_path: Path) -> None:
    tdds = tmp_path / "0xcc" / "tdds"
    tdds.mkdir(parents=True)
    shutil.copy(FIXTURE_TDD, tdds / FIXTURE_TDD.name)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TIDSMITH_DATA_DIR": str(tmp_path / "data"),
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "TERM": "xterm",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-c", SLOW_FAKE],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=20,
    )
    try:
        child.expect_exact(PROMPT)
        child.sendline(
            f"Please create a TID for Billing Export based on 0xcc/tdds/{FIXTURE_TDD.name}"
        )
        child.expect_exact("drafting the TID")
        child.sendintr()
        child.expect_exact("cancelled; the document is as it was before this step")
        child.expect_exact(PROMPT)
        child.sendline("/show")
        child.expect_exact("no document yet")
        child.expect_exact(PROMPT)
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
