"""Version cells checked against the versions the TDD gives (agent.document.versions)."""

from __future__ import annotations

from pathlib import Path

from agent.core.tdd import load_tdd
from agent.core.templates import get_template
from agent.document.versions import NOT_GIVEN, check_versions, given_versions
from agent.draft.plan import plan_messages
from agent.providers.fake import FakeProvider
from tests.drafting import draft_from_tdd

TDD = (
    "# Relay\n\n## Stack\n\n"
    "The API runs on FastAPI with PostgreSQL 16 and Redis 7; `httpx==0.27.2` sends.\n"
)


def test_names_and_the_versions_written_after_them() -> None:
    found = given_versions(TDD + "Python 3.12, then python 3.12 again; node:20.\n")
    assert found["postgresql"] == ["16"]
    assert found["redis"] == ["7"]
    assert found["httpx"] == ["0.27.2"]
    assert found["python"] == ["3.12"]  # once, whatever its case
    assert found["node"] == ["20"]
    assert "fastapi" not in found  # named, with no version


def row(category: str, choice: str, version: str) -> dict[str, str]:
    return {"category": category, "choice": choice, "version": version}


def test_a_version_the_tdd_gives_is_written_as_it_gives_it_and_any_other_is_marked() -> None:
    section = get_template("spec").section("technology_stack")
    content = {
        "stack": [
            row("Database", "PostgreSQL (ADR-001)", "==16.0.0"),
            row("Framework", "FastAPI", "==0.10.1"),
            # The TDD's Redis is 7: another version is marked, not replaced (a
            # dependency table's `redis` is the client library, not the server).
            row("Cache", "Redis", "==5.2.0"),
            row("HTTP", "httpx", "==0.27.2"),
            row("Language", "Python", "latest"),
        ],
        "tdd_refs": [],
    }
    content, notes = check_versions(section, content, given_versions(TDD))
    versions = [r["version"] for r in content["stack"]]
    assert versions == [
        "16",
        f"==0.10.1 {NOT_GIVEN}",
        f"==5.2.0 {NOT_GIVEN}",
        "==0.27.2",
        "latest",  # no version at all: the dependency lint reports it
    ]
    assert notes == [
        "stack: versions the TDD does not give, marked: FastAPI ==0.10.1, Redis ==5.2.0",
        "stack: versions written as the TDD gives them: PostgreSQL ==16.0.0",
    ]
    # Checked twice, the same: a marked cell is not marked again.
    again, more = check_versions(section, content, given_versions(TDD))
    assert again == content and more == []


def test_a_drafted_stack_is_checked_against_the_tdd_and_the_codebase_pins(
    tmp_path: Path,
) -> None:
    reply = {
        "stack": [row("Framework", "FastAPI", "==0.115.0"), row("ORM", "SQLAlchemy", "==2.0.1")],
        "tdd_refs": [],
    }
    pins = {"fastapi": "0.115.0"}
    draft = draft_from_tdd(tmp_path, TDD, "spec", "technology_stack", reply, pins=pins)
    assert [r["version"] for r in draft.content["stack"]] == ["==0.115.0", f"==2.0.1 {NOT_GIVEN}"]
    assert any("SQLAlchemy ==2.0.1" in n for n in draft.notes)


def test_a_plan_reads_versions_only_when_a_section_has_a_version_column(tmp_path: Path) -> None:
    path = tmp_path / "001_FTDD|Relay.md"
    path.write_text(TDD, encoding="utf-8")
    spec, tdd = get_template("spec"), load_tdd(path)

    def plan(section_id: str) -> dict[str, list[str]]:
        sections = [spec.section(section_id)]
        provider = FakeProvider([])
        return plan_messages(
            spec, tdd, provider, max_tokens=1000, schema_in_text=False, sections=sections
        ).versions

    assert plan("technology_stack")["postgresql"] == ["16"]
    assert plan("tldr") == {}
