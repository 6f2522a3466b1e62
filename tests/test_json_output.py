"""`--json`: every command's summary as JSON on stdout, with keys scripts can rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli.main import main

GOOD = "# Technical Design Document: Search\n\n## 1. Index\n\nAn inverted index in SQLite.\n"
REVIEW = Path(__file__).parent / "fixtures" / "review"

GENERATE_KEYS = {
    "schema_version",
    "path",
    "tdd",
    "template",
    "template_version",
    "model",
    "sections",
    "calls",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "wall_s",
    "research_notes",
    "review",
}
REVIEW_KEYS = {
    "schema_version",
    "document",
    "tdd",
    "template",
    "template_version",
    "passed",
    "errors",
    "warnings",
    "scores",
    "checklist_basis",
    "findings",
    "verdicts",
    "orphans",
}


@pytest.fixture
def tdd(tmp_path: Path) -> Path:
    path = tmp_path / "0xcc" / "tdds" / "003_FTDD|Search.md"
    path.parent.mkdir(parents=True)
    path.write_text(GOOD, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "TIDSMITH_MODEL"):
        monkeypatch.delenv(var, raising=False)


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_generate_json(tdd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tdd), "-m", "fake", "-q", "--review", "lint", "--json"]) == 0
    data = _json(capsys)
    assert isinstance(data, dict)
    assert set(data) == GENERATE_KEYS
    assert data["path"] == str(tdd.parent.parent / "tids" / "003_FTID|Search.md")
    assert data["sections"] == 10 and data["model"] == "fake:fake"
    assert set(data["review"]) == REVIEW_KEYS


def test_review_json_on_a_good_and_a_broken_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["review", str(REVIEW / "good_spec.md"), "--json"]) == 0
    good = _json(capsys)
    assert isinstance(good, dict)
    assert set(good) == REVIEW_KEYS and good["passed"] is True
    broken = tmp_path / "broken_SPEC.md"
    broken.write_text("# Spec\n\n## TL;DR\n\nTODO\n", encoding="utf-8")
    assert main(["review", str(broken), "--json", "-"]) == 1
    bad = _json(capsys)
    assert isinstance(bad, dict)
    assert bad["passed"] is False and bad["errors"] >= 1
    assert {"id", "severity", "section", "line", "message"} == set(bad["findings"][0])


def test_review_json_path_still_writes_the_full_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    assert main(["review", str(REVIEW / "good_spec.md"), "--json", str(report)]) == 0
    assert "lints" in json.loads(report.read_text(encoding="utf-8"))
    assert "template spec" in capsys.readouterr().out  # the tables, as before


def test_templates_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "--json"]) == 0
    data = _json(capsys)
    assert isinstance(data, list)
    assert [t["name"] for t in data] == ["spec", "tid"]
    tid = data[1]
    assert tid["sections"][0]["number"] == 1 and tid["sections"][0]["parts"]
    assert len(tid["checklist"]) == 10


def test_batch_json(tdd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(tdd.parent), "-m", "fake", "-q", "--review", "off", "--json"]) == 0
    data = _json(capsys)
    assert isinstance(data, dict)
    assert data["exit_code"] == 0
    [doc] = data["documents"]
    assert doc["status"] == "done" and doc["sections_done"] == 10


def test_batch_dry_run_json(tdd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(tdd.parent), "-m", "fake", "--dry-run", "--json"]) == 0
    data = _json(capsys)
    assert isinstance(data, list) and len(data) == 1
