"""Code cells that name no error, looked up in the TDD (agent.document.error_codes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from agent.core.tdd import load_tdd
from agent.core.templates import get_template
from agent.document.error_codes import BLANK, check_error_codes, code_lines, names_an_error
from agent.draft.plan import plan_messages
from agent.draft.sections import draft_section
from agent.providers.fake import FakeProvider

# The example TDD's error table, and a line of its worker section.
TDD = """# Relay

## Errors

| Error | Cause | Handling |
|---|---|---|
| Redis down on publish | `RedisError` after commit | Still 202; rows stay `pending` |
| PostgreSQL down | `OperationalError` | API 503; sweep recovers jobs later |
| Payload too large | > 256 KiB | 413, nothing stored |

`relay/delivery/worker.py` defines `WorkerSettings` with `max_jobs=32`.
PostgreSQL 16 stores the rows.
"""


def test_what_names_an_error() -> None:
    for cell in ("RedisError", "`OperationalError`", "413", "413 Payload Too Large", "exit 2"):
        assert names_an_error(cell), cell
    assert names_an_error("`endpoint_gone`") and names_an_error("ENDPOINT_GONE")
    for cell in ("KiB", "PostgreSQL", "relay/delivery/worker.py", "Timeout"):
        assert not names_an_error(cell), cell


def row(code: str) -> dict[str, str]:
    return {"code": code, "meaning": "Something failed.", "user_action": "Retry later."}


def test_a_code_cell_naming_no_error_gets_the_one_code_its_tdd_lines_name() -> None:
    section = get_template("spec").section("error_handling")
    content = {
        "error_codes": [
            row("RedisError"),
            row("KiB"),  # its one line names 413
            row("PostgreSQL"),  # its lines name OperationalError and 503: which?
            row("relay/delivery/worker.py"),  # its line names no error
        ]
    }
    content, notes = check_error_codes(section, content, code_lines(TDD))
    assert [r["code"] for r in content["error_codes"]] == ["RedisError", "413", BLANK, BLANK]
    assert len(notes) == 1 and "KiB -> 413" in notes[0]


def test_a_tdd_naming_no_error_code_leaves_the_models_labels() -> None:
    section = get_template("spec").section("error_handling")
    content = {"error_codes": [row("Timeout")]}
    lines = code_lines("# Tool\n\nA timeout stops the run.\n")
    assert lines == []
    assert check_error_codes(section, content, lines) == (content, [])


def test_a_drafted_error_table_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "001_FTDD|Relay.md"
    path.write_text(TDD, encoding="utf-8")
    spec = get_template("spec")
    plan = plan_messages(
        spec, load_tdd(path), FakeProvider([]), max_tokens=1000, schema_in_text=False
    )
    section = spec.section("error_handling")
    reply = {
        "strategy": "Fail fast on bad input, retry deliveries, and report the rest.",
        "error_codes": [row("KiB")],
        "logging": ["Format: JSON lines with the delivery id."],
        "tdd_refs": [],
    }
    draft = asyncio.run(
        draft_section(
            FakeProvider([json.dumps(reply)]),
            spec,
            section,
            plan.requests[section.id],
            max_tokens=1000,
            facts=plan.facts(section.id),
        )
    )
    assert draft.content["error_codes"][0]["code"] == "413"
