"""A section the TDD makes apply is not let through as "Not applicable".

Qwen2.5-Coder-1.5B wrote "Not applicable: The TDD does not define a network
API" for the Spec's API Specification of a TDD with a table of eleven routes,
in two recordings of two (2026-12-03).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from agent.core.tdd import applies, load_tdd, tdd_routes
from agent.core.templates import Section, get_template
from agent.document.lints import run_lints
from agent.draft.plan import SectionDraft
from agent.draft.sections import draft_section, says_not_applicable
from agent.providers.base import Message
from agent.providers.fake import FakeProvider

SPEC = get_template("spec")
API = next(s for s in SPEC.sections if s.id == "api_specification")
TDD = (
    "# Relay\n\n## API\n\n| Method | Path | Purpose |\n|---|---|---|\n"
    "| POST | `/api/v1/events` | Publish |\n| GET | `/api/v1/deliveries/{id}` | One delivery |\n\n"
    "The producer calls POST /api/v1/events once per event.\n"
)
MESSAGES = [Message(role="system", content="prefix"), Message(role="user", content="write it")]
NOT_APPLICABLE = "Not applicable: The TDD does not define a network API."
ENDPOINT = "`POST /api/v1/events`: publish an event; auth yes; returns delivery IDs (202)."
BULLETS = f"- {ENDPOINT}"


def _reply(endpoint: str) -> str:
    # Since spec 1.5 the endpoints are a list, "Not applicable: ..." its one item.
    return json.dumps({"endpoints": [endpoint], "tdd_refs": ["API"]})


def _draft(provider: FakeProvider, section: Section, evidence: list[str] | None) -> SectionDraft:
    return asyncio.run(
        draft_section(provider, SPEC, section, MESSAGES, max_tokens=1000, applies=evidence)
    )


def test_routes_are_read_from_tables_and_prose_once_each(tmp_path: Path) -> None:
    assert tdd_routes(TDD) == ["POST /api/v1/events", "GET /api/v1/deliveries/{id}"]
    path = tmp_path / "tdd.md"
    path.write_text(TDD, encoding="utf-8")
    tdd = load_tdd(path)
    assert applies(API, tdd) == ["POST /api/v1/events", "GET /api/v1/deliveries/{id}"]
    # A section without `applies_if` never applies by evidence.
    assert applies(SPEC.sections[0], tdd) == []


def test_not_applicable_against_the_tdd_routes_is_asked_again_naming_them() -> None:
    provider = FakeProvider([_reply(NOT_APPLICABLE), _reply(ENDPOINT)])
    result = _draft(provider, API, ["POST /api/v1/events", "GET /api/v1/deliveries/{id}"])
    assert len(provider.requests) == 2
    retry = provider.requests[1].messages[-1].content
    assert "`POST /api/v1/events`, `GET /api/v1/deliveries/{id}`" in retry
    assert result.content["endpoints"] == [ENDPOINT]


def test_still_not_applicable_after_asking_again_is_kept_not_failed() -> None:
    provider = FakeProvider([_reply(NOT_APPLICABLE), _reply(NOT_APPLICABLE)])
    result = _draft(provider, API, ["POST /api/v1/events"])
    assert len(provider.requests) == 2
    assert result.content["endpoints"] == [NOT_APPLICABLE]
    assert result.calls[-1].error.startswith("this section applies")


def test_asked_again_and_given_nothing_usable_keeps_the_first_reply() -> None:
    # Without the check the first reply was the section; asking again must not lose it.
    provider = FakeProvider([_reply(NOT_APPLICABLE), "not json"])
    result = _draft(provider, API, ["POST /api/v1/events"])
    assert len(provider.requests) == 2
    assert result.content["endpoints"] == [NOT_APPLICABLE]


def test_without_evidence_not_applicable_is_an_answer() -> None:
    provider = FakeProvider([_reply(NOT_APPLICABLE)])
    result = _draft(provider, API, None)
    assert len(provider.requests) == 1
    assert result.content["endpoints"] == [NOT_APPLICABLE]


def test_not_applicable_is_read_in_text_and_in_a_list_first_item() -> None:
    assert says_not_applicable({"a": "**Not applicable**: no CLI."})
    assert says_not_applicable({"a": ["Not applicable: none."]})
    assert not says_not_applicable({"a": "The API is applicable to producers.", "b": []})


def test_review_fails_a_document_that_says_not_applicable_against_the_routes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tdd.md"
    path.write_text(TDD, encoding="utf-8")
    tdd = load_tdd(path)
    document = f"# Relay Spec\n\n## 4. API Specification\n\n{NOT_APPLICABLE}\n"
    found = [
        f for f in run_lints(document, SPEC, tdd=tdd).findings if f.id == "section.not-applicable"
    ]
    assert len(found) == 1 and found[0].severity == "error"
    assert "2 HTTP routes (POST /api/v1/events, GET /api/v1/deliveries/{id})" in found[0].message
    written = document.replace(NOT_APPLICABLE, BULLETS)
    assert not [
        f for f in run_lints(written, SPEC, tdd=tdd).findings if f.id == "section.not-applicable"
    ]
    # Without routes in the TDD, "Not applicable" is the section's answer.
    path.write_text("# Relay\n\n## Worker\n\nA worker with no API.\n", encoding="utf-8")
    bare = load_tdd(path)
    assert not [
        f for f in run_lints(document, SPEC, tdd=bare).findings if f.id == "section.not-applicable"
    ]


def test_not_applicable_is_read_the_same_way_everywhere() -> None:
    # One reading for the draft's check, the renderer, the echo filter and the lint.
    from agent.core.templates import opens_not_applicable

    for text in (
        "Not applicable: no CLI.",
        "**Not applicable**: none",
        "- `not applicable`",
        "> Not applicable",
    ):
        assert opens_not_applicable(text), text
    for text in ("The API is not applicable to admins.", "Not applicableness", "N/A"):
        assert not opens_not_applicable(text), text
