"""`tidsmith chat` and `ask` on the fake provider: every slash command, revise, Ctrl-C."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent.chat.commands import COMMANDS, REVIEW_SHOWN
from agent.chat.session import ChatSession
from agent.chat.terminal import PlainReader, data_dir, repl, run_step
from agent.cli.main import main
from agent.core.settings import Settings
from agent.core.tdd import load_tdd
from agent.core.templates import get_template
from agent.document.lints import lint_document
from agent.pipeline.generate import run_generate
from agent.providers.base import Request
from agent.providers.fake import FakeProvider, sample_instance

FIXTURE_TDD = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
TDD_REL = "0xcc/tdds/001_FTDD|Billing_Export.md"
TID_REL = "0xcc/tids/001_FTID|Billing_Export.md"
REQUEST = (
    "Please create a Technical Implementation Document (TID) for Billing Export "
    f"based on {TDD_REL}."
)


def _mark(value: Any, suffix: str) -> Any:
    if isinstance(value, dict):
        return {k: _mark(v, suffix) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [_mark(v, suffix) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return f"{value} {suffix}" if isinstance(value, str) else value


def revising(request: Request) -> str:
    """Schema samples; a revision request gets every string marked as revised."""
    data = sample_instance(request.json_schema, request.label)
    if "Revise the section" in request.messages[-1].content:
        data = _mark(data, "revised")
    return json.dumps(data)


class Answers:
    """Scripted answers to the session's yes/no questions."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, question: str) -> bool:
        self.asked.append(question)
        return self.answers.pop(0)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "0xcc" / "tdds").mkdir(parents=True)
    shutil.copy(FIXTURE_TDD, tmp_path / TDD_REL)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Harness:
    def __init__(self, cwd: Path, provider: FakeProvider, answers: Answers) -> None:
        self.out = io.StringIO()
        self.provider = provider
        self.answers = answers
        self.session = ChatSession(
            Settings(concurrency=2, review="off"),
            console=Console(file=self.out, width=200, color_system=None),
            confirm=answers,
            cwd=cwd,
            provider=provider,
        )

    def __call__(self, line: str) -> str:
        """Send one line; return what the session printed for it."""
        start = self.out.tell()
        self.keep = asyncio.run(self.session.handle(line))
        return self.out.getvalue()[start:]


@pytest.fixture
def harness(workdir: Path) -> Iterator[Harness]:
    yield Harness(workdir, FakeProvider(responder=revising), Answers())


def generated(h: Harness) -> Harness:
    out = h(REQUEST)
    assert "drafted the TID for Billing Export: 10 sections" in out
    return h


def test_the_seed_request_generates_without_writing(harness: Harness, workdir: Path) -> None:
    out = harness(REQUEST)
    assert "[10/10]" in out
    assert f"/save to write {TID_REL}" in out
    assert harness.session.doc is not None
    assert harness.session.dirty
    assert not (workdir / TID_REL).exists()
    # The pre-parse read the request: every call was a section draft.
    assert {r.prompt_id for r in harness.provider.requests} == {"draft_section"}


def test_chat_sends_the_requests_a_plain_generate_sends(harness: Harness, workdir: Path) -> None:
    harness(REQUEST)
    direct = FakeProvider(responder=revising)
    asyncio.run(
        run_generate(
            workdir / TDD_REL, settings=Settings(review="off"), provider=direct, write=False
        )
    )

    def key(r: Request) -> str:
        return r.label

    chatted = sorted(harness.provider.requests, key=key)
    assert [r.model_dump() for r in chatted] == [
        r.model_dump() for r in sorted(direct.requests, key=key)
    ]


def test_research_runs_only_when_asked_for(harness: Harness) -> None:
    generated(harness)
    assert not [r for r in harness.provider.requests if r.prompt_id.startswith("research")]
    harness("/research on")
    harness.provider.requests.clear()
    out = harness(REQUEST)
    assert "drafted the TID" in out
    kinds = {r.prompt_id for r in harness.provider.requests}
    assert "research_queries" in kinds
    assert harness.session.doc is not None and harness.session.doc.research is not None


def test_an_ambiguous_feature_asks_which_tdd(harness: Harness, workdir: Path) -> None:
    shutil.copy(FIXTURE_TDD, workdir / "0xcc" / "tdds" / "004_FTDD|Billing_Export_Audit.md")
    out = harness("Please create a TID for Billing Export.")
    assert "2 TDDs match 'Billing Export'" in out
    assert "001_FTDD|Billing_Export.md or 004_FTDD|Billing_Export_Audit.md" in out
    assert harness.session.doc is None
    assert harness.provider.requests == []


def test_the_answer_to_which_tdd_resumes_the_request(harness: Harness, workdir: Path) -> None:
    shutil.copy(FIXTURE_TDD, workdir / "0xcc" / "tdds" / "004_FTDD|Billing_Export_Audit.md")
    assert "Which one?" in harness("Please create a spec for Billing Export.")
    out = harness("the audit one")
    assert "drafted the SPEC" in out
    assert (
        harness.session.tdd_path == workdir / "0xcc" / "tdds" / "004_FTDD|Billing_Export_Audit.md"
    )
    assert harness.session.pending is None


def test_a_missing_tdd_is_said(harness: Harness) -> None:
    out = harness("Please create a TID for Payments based on 0xcc/tdds/009_FTDD|Payments.md")
    assert "0xcc/tdds/009_FTDD|Payments.md: no such file" in out
    assert harness.session.doc is None


def test_option_b_keeps_research_on(harness: Harness) -> None:
    harness(
        "Research first: use /mcp ref search 'CSV export patterns' "
        "then create the TID for Billing Export"
    )
    assert harness.session.research is True
    assert harness.session.doc is not None


def test_a_request_the_preparse_cannot_read_goes_to_the_model(workdir: Path) -> None:
    h = Harness(workdir, FakeProvider(['{"action": "show_cost"}']), Answers())
    out = h("how much so far?")
    assert "this session: 1 calls" in out
    assert h.provider.requests[0].prompt_id == "chat_intent"
    # The model is told which TDDs exist, so it can name one.
    assert "001_FTDD|Billing_Export.md" in h.provider.requests[0].messages[-1].content


def test_help_lists_every_command(harness: Harness) -> None:
    out = harness("/help")
    for name in COMMANDS:
        assert name in out
    assert "end a line with \\" in out
    assert "Esc then Enter" in out


def test_unknown_command_suggests_the_nearest(harness: Harness) -> None:
    assert "did you mean /save?" in harness("/sav")


def test_load_and_generate(harness: Harness, workdir: Path) -> None:
    assert "no document yet" in harness("/show")
    assert "which TDD?" in harness("/generate")
    assert "usage: /load PATH" in harness("/load")
    assert "no such file" in harness("/load nothing.md")
    assert "loaded" in harness(f"/load {TDD_REL}")
    assert harness.session.tdd_path == workdir / TDD_REL
    assert "drafted the TID" in harness("/generate")


def test_research_flag(harness: Harness) -> None:
    assert "research on" in harness("/research on")
    assert harness.session.research is True
    assert "research off" in harness("/research off")
    assert harness.session.research is False
    assert "usage" in harness("/research maybe")


def test_template_switch(harness: Harness, workdir: Path) -> None:
    assert "the next /generate writes a Technical Implementation Spec" in harness("/template spec")
    assert harness.session.template_name == "spec"
    assert "error: unknown template 'nope'" in harness("/template nope")
    harness(f"/load {TDD_REL}")
    out = harness("/generate")
    assert "drafted the SPEC" in out
    harness("/save")
    assert (workdir / "0xcc" / "specs" / "001_FSPEC|Billing_Export.md").is_file()


def test_model_switch(harness: Harness) -> None:
    assert "error: unknown model id" in harness("/model nosuch:thing")
    assert "model fake:other" in harness("/model fake:other")
    assert harness.session.settings.model == "fake:other"
    generated(harness)
    assert harness.session.doc is not None
    assert harness.session.doc.record.model == "fake:other"
    # The new model answered, not the one the session started with.
    assert harness.provider.requests == []


def test_show_whole_document_and_one_section(harness: Harness) -> None:
    generated(harness)
    whole = harness("/show")
    assert "Technical Implementation Document: Billing Export" in whole
    two = harness("/show 2")
    assert "Code Structure" in two and "Implementation Strategy" not in two
    assert "Code Structure" in harness("/show code_structure")
    assert "no section '99'" in harness("/show 99")


def test_revise_redrafts_one_section_and_shows_the_diff(harness: Harness) -> None:
    generated(harness)
    before = harness.session.doc
    assert before is not None
    calls_before = len(harness.provider.requests)
    out = harness("/revise 2 add the test utilities")
    assert "re-drafted 2. Code Structure" in out
    assert "+" in out and "revised" in out
    # One call, for that section only: original request + previous reply + instruction.
    assert len(harness.provider.requests) == calls_before + 1
    request = harness.provider.requests[-1]
    assert request.label == "code_structure"
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "user"]
    previous = next(d for d in before.sections if d.section_id == "code_structure")
    assert json.loads(request.messages[2].content) == previous.content
    assert "add the test utilities" in request.messages[3].content
    assert "Billing Export" in request.messages[3].content  # the conversation so far
    after = harness.session.doc
    assert after is not None
    assert after.record.prompts["revise_instruction"] == "1"
    assert after.record.totals.calls == before.record.totals.calls + 1
    changed = [
        d.section_id
        for d, old in zip(after.sections, before.sections, strict=True)
        if d.content != old.content
    ]
    assert changed == ["code_structure"]


def test_revise_in_plain_words(harness: Harness) -> None:
    generated(harness)
    assert "re-drafted 6. Testing Implementation" in harness(
        "revise section 6 to add the test utilities"
    )


def test_revise_needs_a_document_a_section_and_an_instruction(harness: Harness) -> None:
    assert "no document yet" in harness("/revise 2 more")
    generated(harness)
    assert "which section?" in harness("/revise 99 more detail")
    assert "what should change" in harness("/revise 2")


def test_diff_and_undo(harness: Harness) -> None:
    assert "nothing to compare" in harness("/diff")
    assert "nothing to undo" in harness("/undo")
    generated(harness)
    original = harness.session.doc
    harness("/revise 3 name the algorithms")
    diff = harness("/diff")
    assert diff.startswith("--- before")
    assert "-" in diff and "revised" in diff
    assert "back to the previous version" in harness("/undo")
    assert harness.session.doc == original


def test_review_prints_the_review_stages_lints(harness: Harness) -> None:
    assert "no document yet" in harness("/review")
    generated(harness)
    doc = harness.session.doc
    assert doc is not None
    findings = lint_document(
        doc.markdown,
        get_template("tid"),
        tdd=load_tdd(Path(doc.record.tdd_path)),
        sections={d.section_id: d.content for d in doc.sections},
    )
    out = harness("/review")
    assert f"review: {len(findings)} findings" in out
    for f in findings[:REVIEW_SHOWN]:
        assert f"{f.message} [{f.id}]" in out
    if len(findings) > REVIEW_SHOWN:
        assert f"and {len(findings) - REVIEW_SHOWN} more" in out


def test_save_writes_and_asks_before_overwriting_a_file_it_did_not_write(workdir: Path) -> None:
    answers = Answers(False, True)
    h = Harness(workdir, FakeProvider(responder=revising), answers)
    assert "no document yet" in h("/save")
    generated(h)
    assert f"saved {TID_REL}" in h("/save")
    text = (workdir / TID_REL).read_text(encoding="utf-8")
    # Links are relative to where the file went, as generate writes them.
    assert "[001_FTDD|Billing_Export](../tdds/001_FTDD|Billing_Export.md)" in text
    assert "**Document ID:** 001_FTID|Billing_Export" in text
    run_json = workdir / "0xcc/tids/.tidsmith/001_FTID|Billing_Export.run.json"
    record = json.loads(run_json.read_text(encoding="utf-8"))
    assert record["output_path"].endswith("001_FTID|Billing_Export.md")
    assert not h.session.dirty
    h("/revise 2 add the test utilities")
    assert h.session.dirty
    # Saving again over the file this session wrote needs no question.
    assert "saved" in h("/save")
    assert answers.asked == []
    saved = (workdir / TID_REL).read_text(encoding="utf-8")
    assert "revised" in saved
    # Someone else's edit since: now it asks (answered no, then yes).
    (workdir / TID_REL).write_text(saved + "\nhand edit\n", encoding="utf-8")
    h("/revise 3 name the algorithms")
    assert "not saved" in h("/save")
    assert (workdir / TID_REL).read_text(encoding="utf-8").endswith("hand edit\n")
    assert "saved" in h("/save")
    assert "hand edit" not in (workdir / TID_REL).read_text(encoding="utf-8")
    assert len(answers.asked) == 2 and "exists; overwrite it?" in answers.asked[0]
    assert "saved other/x.md" in h("/save other/x.md")
    assert (workdir / "other" / "x.md").is_file()


@pytest.mark.parametrize("template", ["tid", "spec"])
def test_a_saved_document_is_the_one_generate_writes(workdir: Path, template: str) -> None:
    h = Harness(workdir, FakeProvider(), Answers())
    h(f"/template {template}")
    h(f"/load {TDD_REL}")
    h("/generate")
    h("/save")
    [saved] = (workdir / "0xcc").glob(f"{template}s/*.md")
    chatted = saved.read_text(encoding="utf-8")
    saved.unlink()
    assert main(["generate", TDD_REL, "-m", "fake", "-t", template, "-q"]) == 0
    assert saved.read_text(encoding="utf-8") == chatted


def test_cost_counts_the_document_and_the_session(harness: Harness) -> None:
    out = harness("/cost")
    assert "this session: 0 calls" in out and "this document" not in out
    generated(harness)
    out = harness("/cost")
    assert "this document: 10 calls" in out
    assert "$0.0000" in out


def test_quit_asks_once_when_the_document_is_unsaved(workdir: Path) -> None:
    h = Harness(workdir, FakeProvider(), Answers(False, True))
    h("/quit")
    assert h.keep is False  # nothing to lose: leaves without asking
    generated(h)
    h("/quit")
    assert h.keep is True and len(h.answers.asked) == 1
    h("/quit")
    assert h.keep is False


class Stalling(FakeProvider):
    """Hangs on every call until `stall` is cleared: a step to cancel."""

    stall = True

    async def complete(self, request: Request) -> Any:
        if self.stall:
            await asyncio.sleep(60)
        return await super().complete(request)


def test_ctrl_c_during_a_draft_cancels_the_step_not_the_session(workdir: Path) -> None:
    provider = Stalling()
    h = Harness(workdir, provider, Answers())
    before = signal.getsignal(signal.SIGINT)

    async def scenario() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, os.kill, os.getpid(), signal.SIGINT)
        started = time.perf_counter()
        keep = await run_step(h.session.handle(REQUEST), h.session.console)
        return keep, time.perf_counter() - started

    keep, took = asyncio.run(scenario())
    assert keep is True
    assert took < 5
    assert "cancelled" in h.out.getvalue()
    assert h.session.doc is None
    assert signal.getsignal(signal.SIGINT) is before
    provider.stall = False
    assert "drafted the TID" in h(REQUEST)


def test_a_script_on_stdin_drives_the_session(workdir: Path) -> None:
    lines = "\n".join(
        [
            "Please create a TID for \\",
            f"Billing Export based on {TDD_REL}",
            "/revise 2 add the test utilities",
            "/save",
            "/quit",
        ]
    )
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    reader = PlainReader(io.StringIO(lines + "\n"), console)
    session = ChatSession(
        Settings(),
        console=console,
        confirm=reader.confirm,
        cwd=workdir,
        provider=FakeProvider(responder=revising),
    )
    assert asyncio.run(repl(session, reader)) == 0
    assert "revised" in (workdir / TID_REL).read_text(encoding="utf-8")


def test_end_of_input_with_unsaved_work_asks_then_leaves(workdir: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    reader = PlainReader(io.StringIO(REQUEST + "\n"), console)
    session = ChatSession(
        Settings(), console=console, confirm=reader.confirm, cwd=workdir, provider=FakeProvider()
    )
    assert asyncio.run(repl(session, reader)) == 0
    text = out.getvalue()
    assert text.count("the document is not saved; quit anyway?") == 1
    assert "left without saving" in text
    assert not (workdir / TID_REL).exists()


def test_the_history_lives_in_the_user_data_folder(tmp_path: Path) -> None:
    assert data_dir({"TIDSMITH_DATA_DIR": str(tmp_path)}) == tmp_path
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert data_dir({"XDG_DATA_HOME": "/x"}) == Path("/x/tidsmith")


# --- tidsmith ask ---------------------------------------------------------------------------


def test_ask_writes_the_document_like_generate(workdir: Path) -> None:
    assert main(["ask", REQUEST, "-m", "fake"]) == 0
    assert (workdir / TID_REL).is_file()
    assert (workdir / "0xcc/tids/.tidsmith/001_FTID|Billing_Export.run.json").is_file()
    # An existing document is never replaced without --force.
    assert main(["ask", REQUEST, "-m", "fake"]) == 2
    assert main(["ask", REQUEST, "-m", "fake", "--force"]) == 0


def test_ask_for_a_spec_by_feature_name(workdir: Path) -> None:
    assert main(["ask", "Create an implementation spec for Billing Export", "-m", "fake"]) == 0
    assert (workdir / "0xcc/specs/001_FSPEC|Billing_Export.md").is_file()


def test_ask_exits_2_when_the_tdd_is_ambiguous_or_missing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(FIXTURE_TDD, workdir / "0xcc" / "tdds" / "004_FTDD|Billing_Export_Audit.md")
    assert main(["ask", "Please create a TID for Billing Export", "-m", "fake"]) == 2
    assert "Which one?" in capsys.readouterr().err
    assert main(["ask", "Please create a TID for Payments", "-m", "fake"]) == 2
    assert "no TDD matches 'Payments'" in capsys.readouterr().err
    assert not (workdir / "0xcc" / "tids").exists()


def test_ask_only_creates_documents(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "revise section 2 to be shorter", "-m", "fake"]) == 2
    assert "ask only creates documents" in capsys.readouterr().err


def test_revising_a_researched_document_keeps_its_notes(harness: Harness, workdir: Path) -> None:
    prds = workdir / "0xcc" / "prds"
    prds.mkdir()
    (prds / "001_FPRD|Billing_Export.md").write_text(
        "# Feature PRD: Billing Export\n\n## Goals\n\nExports must finish within 30 seconds.\n",
        encoding="utf-8",
    )
    harness("/research on")
    generated(harness)
    first = next(r for r in harness.provider.requests if r.label == "code_structure")
    assert "<research-notes" in first.messages[0].content
    harness.provider.requests.clear()
    harness("/revise 2 add the test utilities")
    # (The fake marks every string "revised", note ids too, so it is asked twice.)
    revision = harness.provider.requests[0]
    assert revision.label == "code_structure"
    # The same shared prefix, notes included, and the section may still cite them.
    assert revision.messages[0].content == first.messages[0].content
    assert "note_refs" in revision.json_schema["properties"]
