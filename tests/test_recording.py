"""--record and --replay against a loopback OpenAI-compatible test server.

The server here is a test fixture that answers with schema-valid JSON; the
cassettes it produces live in tmp_path only. The project's committed
cassettes (real model exchanges) are replayed in test_cassettes.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from agent.cli.main import main
from agent.providers.fake import sample_instance

SECRET = "sk-test-DO-NOT-LEAK-0123456789abcdef"
TDD = "# Technical Design Document: Search\n\n## 1. Index\n\nAn inverted index in SQLite FTS5.\n"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length))
        schema = body["response_format"]["json_schema"]["schema"]
        content = json.dumps(sample_instance(schema, "recorded"))
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("openai-organization", "org-SECRETORG")
        self.send_header("set-cookie", "session=SECRETCOOKIE")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tdd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "TIDSMITH_MODEL"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "0xcc" / "tdds" / "004_FTDD|Search.md"
    path.parent.mkdir(parents=True)
    path.write_text(TDD, encoding="utf-8")
    return path


def record(tdd: Path, server: str, cassette: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tdd.parent.parent / "recorded"
    args = ["generate", str(tdd), "-m", "openai:test-model", "--base-url", server, "-q"]
    assert main([*args, "--record", str(cassette), "--out", str(out)]) == 0
    monkeypatch.delenv("OPENAI_API_KEY")
    return next(out.glob("*.md"))


def test_replay_reproduces_the_recorded_document_byte_for_byte(
    tdd: Path, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = tmp_path / "run.yaml"
    recorded = record(tdd, server, cassette, monkeypatch)
    meta = json.loads(cassette.with_name("run.yaml.meta.json").read_text())
    run_json = recorded.parent / ".tidsmith" / f"{recorded.stem}.run.json"
    # Ten drafts, then the review's calls: every one of them is in the cassette.
    assert meta["interactions"] == json.loads(run_json.read_text())["totals"]["calls"] > 10
    assert meta["review"] == "llm"
    assert meta["prompts"]["draft_section"]
    assert meta["prompts"]["review_checklist"]
    # Only the prompts its calls used: no code was written, nothing researched.
    assert "write_code" not in meta["prompts"]
    assert "research_queries" not in meta["prompts"]

    # No key, and the base URL now points nowhere: the cassette answers.
    out = tdd.parent.parent / "replayed"
    args = ["generate", str(tdd), "-m", "openai:test-model", "--base-url", "http://127.0.0.1:9/v1"]
    assert main([*args, "-q", "--replay", str(cassette), "--out", str(out)]) == 0
    replayed = next(out.glob("*.md"))
    assert replayed.read_bytes() == recorded.read_bytes()


def test_recorded_cassette_holds_no_secret(
    tdd: Path, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = tmp_path / "run.yaml"
    record(tdd, server, cassette, monkeypatch)
    text = cassette.read_text(encoding="utf-8")
    for secret in (SECRET, "SECRETORG", "SECRETCOOKIE"):
        assert secret not in text
    for interaction in yaml.safe_load(text)["interactions"]:
        assert "authorization" not in {h.lower() for h in interaction["request"]["headers"]}
        response_headers = {h.lower() for h in interaction["response"]["headers"]}
        assert not response_headers & {"openai-organization", "set-cookie"}


def test_a_request_missing_from_the_cassette_names_section_and_prompt(
    tdd: Path,
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cassette = tmp_path / "run.yaml"
    record(tdd, server, cassette, monkeypatch)
    data = yaml.safe_load(cassette.read_text(encoding="utf-8"))
    dropped = json.loads(data["interactions"][-1]["request"]["body"])
    data["interactions"] = data["interactions"][:-1]
    cassette.write_text(yaml.safe_dump(data), encoding="utf-8")
    capsys.readouterr()
    args = ["generate", str(tdd), "-m", "openai:test-model", "--base-url", "http://127.0.0.1:9/v1"]
    code = main([*args, "-q", "--replay", str(cassette), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1
    assert "not in the cassette" in err and "draft_section" in err
    # The dropped request was one section's; the error names that section.
    section = dropped["response_format"]["json_schema"]["name"].removeprefix("section_")
    assert f"section {section!r}" in err
    # No document: only the failed run's record of the calls it made.
    assert [p.name for p in (tmp_path / "o").iterdir()] == [".tidsmith"]


def test_replay_refuses_a_changed_tdd(
    tdd: Path,
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cassette = tmp_path / "run.yaml"
    record(tdd, server, cassette, monkeypatch)
    tdd.write_text(TDD + "\n## 2. More\n\nChanged.\n", encoding="utf-8")
    capsys.readouterr()
    args = ["generate", str(tdd), "-m", "openai:test-model", "--replay", str(cassette)]
    assert main([*args, "-q", "--out", str(tmp_path / "o")]) == 2
    assert "different TDD" in capsys.readouterr().err


def test_record_new_refuses_an_existing_cassette_and_a_failed_run_leaves_none(
    tdd: Path,
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cassette = tmp_path / "run.yaml"
    record(tdd, server, cassette, monkeypatch)
    before = cassette.read_bytes()
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    args = ["generate", str(tdd), "-m", "openai:test-model", "--base-url", server, "-q"]
    assert main([*args, "--record", str(cassette), "--out", str(tmp_path / "o")]) == 2
    assert "--force" in capsys.readouterr().err
    assert cassette.read_bytes() == before

    fresh = tmp_path / "fresh.yaml"
    dead = ["generate", str(tdd), "-m", "openai:m", "--base-url", "http://127.0.0.1:9/v1", "-q"]
    assert main([*dead, "--record", str(fresh), "--out", str(tmp_path / "o2")]) == 1
    assert not fresh.exists()
    assert list(tmp_path.glob(".fresh.yaml*")) == []


def test_replay_of_a_missing_cassette_is_a_clear_error(
    tdd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["generate", str(tdd), "-m", "fake", "--replay", str(tmp_path / "none.yaml")])
    assert code == 2
    assert "record it first" in capsys.readouterr().err
