"""Code cells that name no error, looked up in the TDD (agent.document.error_codes)."""

from __future__ import annotations

from pathlib import Path

from agent.core.templates import get_template
from agent.document.error_codes import BLANK, check_error_codes, code_lines, names_an_error
from tests.drafting import draft_from_tdd

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
    reply = {
        "strategy": "Fail fast on bad input, retry deliveries, and report the rest.",
        "error_codes": [row("KiB")],
        "logging": ["Format: JSON lines with the delivery id."],
        "tdd_refs": [],
    }
    draft = draft_from_tdd(tmp_path, TDD, "spec", "error_handling", reply)
    assert draft.content["error_codes"][0]["code"] == "413"


def test_quantities_are_not_read_as_http_statuses() -> None:
    text = "Throughput ≥ 500 deliveries/s\np95 < 450 ms\nrate 500/s\nAPI 503; sweep later\n"
    assert code_lines(text) == ["API 503; sweep later"]
    assert not names_an_error("500 ms")
