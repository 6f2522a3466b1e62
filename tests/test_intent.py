"""Chat requests → intents: the seed's phrasings, the model path, and resolving TDDs."""

from __future__ import annotations

import asyncio
import json
import runpy
from pathlib import Path
from typing import Any

import pytest

from agent.chat.intent import (
    Intent,
    IntentContext,
    ask_model,
    find_path,
    interpret,
    pick_candidate,
    preparse,
    repair,
    resolve_section,
    resolve_tdd,
)
from agent.core.templates import get_template
from agent.pipeline.recording import cassette
from agent.providers import open_provider
from agent.providers.fake import FakeProvider

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
CASES: list[dict[str, Any]] = json.loads(
    (FIXTURES / "chat" / "intent_replies.json").read_text(encoding="utf-8")
)["cases"]

SEED_A = (
    "Please create a Technical Implementation Document (TID) for Data Export "
    "based on 0xcc/tdds/002_FTDD|DataExport.md."
)
SEED_EXAMPLE = (
    'Please create a Technical Implementation Document for "Data Export" based on the TDD '
    "in 0xcc/tdds/002_FTDD|DataExport.md.\n\nContext: The system uses FastAPI with SQLAlchemy "
    "ORM, PostgreSQL database, and Redis caching."
)
OPTION_B = (
    "\U0001f50d Research first: Use /mcp ref search 'FastAPI implementation patterns streaming "
    "CSV export'\n\nThen create a TID for Data Export incorporating current implementation "
    "best practices and proven coding patterns."
)


def run_interpret(text: str, provider: FakeProvider | None) -> Intent:
    intent, _ = asyncio.run(interpret(text, provider, IntentContext()))
    return intent


@pytest.mark.parametrize("text", [SEED_A, SEED_EXAMPLE])
def test_the_seeds_option_a_phrasings_need_no_model(text: str) -> None:
    provider = FakeProvider()
    intent = run_interpret(text, provider)
    assert intent.action == "generate"
    assert intent.template == "tid"
    assert intent.research is False
    assert intent.tdd == "0xcc/tdds/002_FTDD|DataExport.md"
    assert provider.requests == []


def test_option_b_is_generate_with_research_and_its_query() -> None:
    provider = FakeProvider()
    intent = run_interpret(OPTION_B, provider)
    assert intent.action == "generate"
    assert intent.research is True
    assert intent.research_query == "FastAPI implementation patterns streaming CSV export"
    assert intent.template == "tid"
    assert intent.tdd == "Data Export"
    assert provider.requests == []


@pytest.mark.parametrize(
    ("text", "template", "tdd"),
    [
        ("Create an implementation spec for Model Management", "spec", "Model Management"),
        (
            "generate the TID from '0xcc/tdds/003_FTDD|SAE Training.md'",
            "tid",
            "0xcc/tdds/003_FTDD|SAE Training.md",
        ),
        ("Please create a TID for [FEATURE NAME] based on [TDD FILE].", "tid", ""),
        ("Write a spec for the Billing Export feature.", "spec", "Billing Export"),
    ],
)
def test_preparse_reads_template_and_tdd(text: str, template: str, tdd: str) -> None:
    intent = preparse(text)
    assert intent is not None
    assert (intent.action, intent.template, intent.tdd) == ("generate", template, tdd)


def test_preparse_reads_a_revision() -> None:
    intent = preparse("revise section 2 to add the test utilities")
    assert intent is not None
    assert (intent.action, intent.section, intent.instruction) == (
        "revise",
        "2",
        "add the test utilities",
    )
    named = preparse("rewrite the configuration section: list every env var")
    assert named is not None
    assert (named.section, named.instruction) == ("configuration", "list every env var")


def test_preparse_leaves_other_requests_to_the_model() -> None:
    assert preparse("how much has this cost so far?") is None
    assert preparse("make it shorter") is None


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_model_replies_are_parsed_and_repaired(case: dict[str, Any]) -> None:
    """Hand-made replies (tests/fixtures/chat/intent_replies.json), not recorded ones."""
    reply = case.get("reply_text") or json.dumps(case["reply"])
    provider = FakeProvider([reply])
    intent = run_interpret(case["request"], provider)
    assert len(provider.requests) == 1
    request = provider.requests[0]
    assert request.prompt_id == "chat_intent"
    assert case["request"] in request.messages[-1].content
    for key, value in case["expect"].items():
        assert getattr(intent, key) == value, key


def test_the_schema_goes_in_the_text_for_models_without_structured_output() -> None:
    provider = FakeProvider(['{"action": "show_cost"}'], schema_in_text=True)
    intent = run_interpret("how much so far?", provider)
    assert intent.action == "show_cost"
    assert '"action"' in provider.requests[0].messages[-1].content


def test_without_a_model_an_unclear_request_is_unknown() -> None:
    assert run_interpret("hmm", None).action == "unknown"


def test_find_path_strips_sentence_punctuation_and_quotes() -> None:
    assert find_path("based on 0xcc/tdds/002_FTDD|X.md.") == "0xcc/tdds/002_FTDD|X.md"
    assert find_path("from `docs/a b.md`, please") == "docs/a b.md"
    assert find_path("no file here") == ""


# --- resolving a TDD --------------------------------------------------------------------


def make_tdds(root: Path, *names: str) -> Path:
    folder = root / "0xcc" / "tdds"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text(f"# TDD: {name}\n\n## A\n\ntext\n", encoding="utf-8")
    return folder


def test_an_existing_path_resolves(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path, "002_FTDD|Data_Export.md")
    match = resolve_tdd("0xcc/tdds/002_FTDD|Data_Export.md", tmp_path)
    assert match.path == folder / "002_FTDD|Data_Export.md"


def test_a_feature_name_resolves_to_its_tdd(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path, "002_FTDD|Data_Export.md", "003_FTDD|Model_Management.md")
    assert resolve_tdd("Data Export", tmp_path).path == folder / "002_FTDD|Data_Export.md"
    assert resolve_tdd("DataExport", tmp_path).path == folder / "002_FTDD|Data_Export.md"
    assert resolve_tdd("3", tmp_path).path == folder / "003_FTDD|Model_Management.md"


def test_two_matching_tdds_are_a_question_not_a_guess(tmp_path: Path) -> None:
    make_tdds(tmp_path, "002_FTDD|Data_Export.md", "007_FTDD|Data_Export_Scheduling.md")
    match = resolve_tdd("Data Export", tmp_path)
    assert match.path is None
    assert [p.name for p in match.candidates] == [
        "002_FTDD|Data_Export.md",
        "007_FTDD|Data_Export_Scheduling.md",
    ]
    assert "002_FTDD|Data_Export.md" in match.message
    assert "007_FTDD|Data_Export_Scheduling.md" in match.message
    assert match.message.endswith("?")


def test_a_missing_tdd_is_said_plainly(tmp_path: Path) -> None:
    make_tdds(tmp_path, "002_FTDD|Data_Export.md")
    match = resolve_tdd("Payments", tmp_path)
    assert match.path is None and not match.candidates
    assert "no TDD matches 'Payments'" in match.message
    elsewhere = resolve_tdd("Payments", tmp_path / "0xcc")
    assert "no 0xcc/tdds/ folder" in elsewhere.message


def test_the_seeds_path_with_a_typo_is_offered_not_used(tmp_path: Path) -> None:
    make_tdds(tmp_path, "002_FTDD|Data_Export.md")
    match = resolve_tdd("0xcc/tdds/002_FTDD|DataExport.md", tmp_path)
    assert match.path is None
    assert [p.name for p in match.candidates] == ["002_FTDD|Data_Export.md"]
    assert "did you mean 002_FTDD|Data_Export.md" in match.message


def test_nothing_named_uses_the_loaded_tdd(tmp_path: Path) -> None:
    loaded = make_tdds(tmp_path, "001_FTDD|Billing.md") / "001_FTDD|Billing.md"
    assert resolve_tdd("", tmp_path, loaded).path == loaded
    assert "which TDD" in resolve_tdd("", tmp_path).message


def test_sections_resolve_by_number_id_and_title() -> None:
    tid = get_template("tid")
    assert resolve_section(tid, "2") is tid.sections[1]
    assert resolve_section(tid, "code_structure") is tid.sections[1]
    assert resolve_section(tid, "Testing Implementation") is tid.sections[5]
    assert resolve_section(tid, "testing") is tid.sections[5]
    assert resolve_section(tid, "99") is None
    assert resolve_section(tid, "") is None


def test_an_answer_to_which_one_picks_a_candidate() -> None:
    a, b = Path("002_FTDD|Data_Export.md"), Path("007_FTDD|Data_Export_Scheduling.md")
    assert pick_candidate("the first", [a, b]) == a
    assert pick_candidate("the last one", [a, b]) == b
    assert pick_candidate("007", [a, b]) == b
    assert pick_candidate("2", [a, b]) == a  # a document number, not an ordinal
    assert pick_candidate("002_FTDD|Data_Export please", [a, b]) == a
    assert pick_candidate("the scheduling one", [a, b]) == b
    assert pick_candidate("data export", [a, b]) is None
    assert pick_candidate("no idea", [a, b]) is None


# --- real replies: Qwen2.5-Coder-1.5B through llama-server, recorded by
# scripts/record_intents.py into cassettes/chat-intent.yaml ---------------------------


def _recorded() -> dict[str, Intent]:
    # The requests and context exactly as the recording script sent them.
    script = runpy.run_path(str(ROOT / "scripts" / "record_intents.py"), run_name="recorded")
    requests: list[str] = script["REQUESTS"]
    context: IntentContext = script["CONTEXT"]

    async def replay() -> dict[str, Intent]:
        read: dict[str, Intent] = {}
        # The request shape the recording used (the script says it); the host is ignored.
        provider = await open_provider(
            "openai:qwen-1.5b",
            base_url="http://127.0.0.1:9/v1",
            replay=True,
            structured=script["STRUCTURED"],
        )
        try:
            with cassette(ROOT / "cassettes" / "chat-intent.yaml", "replay"):
                for text in requests:
                    intent, _ = await ask_model(provider, text, context)
                    read[text] = repair(intent, text)
        finally:
            await provider.aclose()
        return read

    return asyncio.run(replay())


def test_recorded_replies_are_read_and_repaired_by_code(tmp_path: Path) -> None:
    read = _recorded()
    # The model's own reading, kept where it is right.
    assert read["switch to the spec template"].action == "set_template"
    assert read["switch to the spec template"].template == "spec"
    # It guessed a section for a generate request; the TDD comes from the words.
    billing = read["I'd like the implementation doc for billing export"]
    assert billing.action == "generate" and billing.research is False
    tdds = tmp_path / "0xcc" / "tdds"
    tdds.mkdir(parents=True)
    (tdds / "001_FTDD|Billing_Export.md").write_text("# Billing Export\n\n## A\n")
    (tdds / "002_FTDD|Audit_Log.md").write_text("# Audit Log\n\n## A\n")
    match = resolve_tdd(billing.tdd, tmp_path)
    assert match.path is not None and match.path.name == "001_FTDD|Billing_Export.md"
    # The small model asked back instead of acting on the other four: each is a
    # clarifying question for the user, never an action taken on a guess.
    for text in (
        "what has this cost me so far?",
        "make section 2 mention the test utilities",
        "write it to out/billing.md",
        "do the audit log one next",
    ):
        assert read[text].action == "clarify" and read[text].question, text
