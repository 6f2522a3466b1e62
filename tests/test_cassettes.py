"""The committed cassettes: replayed offline, scanned for secrets, none unused or stale.

Every file under cassettes/ is a real HTTP recording made by
scripts/record-cassettes against llama.cpp's llama-server on this project's
machines (OpenAI and Anthropic protocols, an embedded GGUF model as the
model). CI replays them with the network blocked.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.core.templates import get_template
from agent.draft.prompting import load_prompt
from agent.pipeline.generate import prompt_versions

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
EXAMPLE = ROOT / "examples" / "0xcc"
EXAMPLE_TDD = "001_FTDD|Webhook_Delivery.md"

# Every committed cassette, and how to replay it: template and the extra
# generate arguments it was recorded with (scripts/record-cassettes). A
# cassette not listed here fails test_every_cassette_is_used.
REPLAYS: dict[str, tuple[str, list[str]]] = {
    "openai-tid.yaml": ("tid", []),
    "openai-spec.yaml": ("spec", []),
    "openai-tid-research.yaml": ("tid", ["--codebase", "codebase"]),
    # The Anthropic protocol on llama-server, recorded with Qwen2.5-Coder-1.5B
    # (SmolLM2 writes the wrong section's object under the union grammar).
    "anthropic-tid.yaml": ("tid", []),
}
# Cassettes of single model calls, replayed by other test files.
REPLAYED_ELSEWHERE = {"chat-intent.yaml": "tests/test_intent.py"}

_KEY_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    # Eight or more, as the redactor (agent/core/redact.py): "a bearer token." is prose.
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=\-]{8,}"),
]
_ACCOUNT_HEADERS = re.compile(
    r"(?im)^\s*-?\s*['\"]?(authorization|x-api-key|cookie|set-cookie|openai-organization"
    r"|openai-project|anthropic-organization-id)['\"]?\s*:"
)


def find_secrets(text: str, *, headers: bool = True) -> list[str]:
    """What in a cassette's text looks like a key or an account header.

    `headers=False` for a derived document, where "- Authorization: uses a bearer
    token" is a list item of the Spec's Security section, not a header.
    """
    found = [m.group(0) for p in _KEY_PATTERNS for m in p.finditer(text)]
    if headers:
        found += [m.group(1) for m in _ACCOUNT_HEADERS.finditer(text)]
    return found


def committed() -> list[Path]:
    return sorted(CASSETTES.glob("*.yaml"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection fails: a replay must not need one."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("network blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("name", sorted(REPLAYS))
def test_cassette_replays_offline_to_the_recorded_document(
    name: str,
    tmp_path: Path,
    no_network: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cassette = CASSETTES / name
    if not cassette.exists():
        pytest.fail(f"{cassette} is missing: run scripts/record-cassettes")
    template, extra = REPLAYS[name]
    # The same layout the recording ran in: the example's 0xcc/ tree and the
    # fixture codebase beside it, paths relative to the working folder.
    shutil.copytree(EXAMPLE / "tdds", tmp_path / "0xcc" / "tdds")
    shutil.copytree(EXAMPLE / "prds", tmp_path / "0xcc" / "prds")
    shutil.copytree(EXAMPLE / "adrs", tmp_path / "0xcc" / "adrs")
    shutil.copytree(ROOT / "tests" / "fixtures" / "research" / "codebase", tmp_path / "codebase")
    monkeypatch.chdir(tmp_path)
    args = ["generate", f"0xcc/tdds/{EXAMPLE_TDD}", "-t", template, "-q", *extra]
    code = main([*args, "--replay", str(cassette)])
    out = capsys.readouterr()
    assert code == 0, out.err
    written = next((tmp_path / "0xcc" / f"{get_template(template).doc_kind.lower()}s").glob("*.md"))
    expected = cassette.with_name(cassette.stem + ".md")
    assert written.read_text(encoding="utf-8") == expected.read_text(encoding="utf-8")


def test_every_cassette_is_used() -> None:
    unused = [p.name for p in committed() if p.name not in {*REPLAYS, *REPLAYED_ELSEWHERE}]
    assert unused == [], f"cassettes no test replays: {unused}"


def test_no_cassette_is_stale() -> None:
    """A prompt or template change must come with re-recorded cassettes."""
    prompts = ROOT / "prompts"
    now = {p.stem: load_prompt(p.stem).version for p in sorted(prompts.glob("*.yaml"))}
    assert set(prompt_versions()) <= set(now)
    for path in committed():
        meta = json.loads(path.with_name(path.name + ".meta.json").read_text(encoding="utf-8"))
        used = {k: now.get(k) for k in meta["prompts"]}
        assert meta["prompts"] == used, f"{path.name} was recorded with prompts {meta['prompts']}"
        if "template" in meta:
            tpl = get_template(meta["template"])
            assert meta["template_version"] == tpl.version, f"{path.name}: template changed"


def test_cassettes_hold_no_secrets() -> None:
    problems = {
        p.name: find_secrets(p.read_text(encoding="utf-8"), headers=p.suffix != ".md")
        for p in sorted(CASSETTES.glob("*"))
        if p.is_file()
    }
    assert {k: v for k, v in problems.items() if v} == {}


@pytest.mark.parametrize(
    "planted",
    [
        "Authorization: Bearer sk-proj-abcdefghijklmnop",
        "  x-api-key: sk-ant-api03-abcdefghijklmnop",
        "    openai-organization: org-123",
        "    - set-cookie: __cf_bm=abc",
        "body: 'key sk-abcdef1234567890'",
    ],
)
def test_the_scan_catches_a_planted_key(planted: str, tmp_path: Path) -> None:
    fake = tmp_path / "planted.yaml"
    fake.write_text(f"interactions:\n- request:\n    headers:\n{planted}\n", encoding="utf-8")
    assert find_secrets(fake.read_text(encoding="utf-8"))


def test_the_research_cassette_carries_the_pins_and_names_prd_and_adr() -> None:
    """Research as recorded: the codebase's exact pin is in every drafted section's prompt."""
    import yaml

    tape = yaml.safe_load((CASSETTES / "openai-tid-research.yaml").read_text(encoding="utf-8"))
    bodies = [json.loads(i["request"]["body"]) for i in tape["interactions"]]
    drafts = [b for b in bodies if b["messages"][-1]["content"].startswith("Write the section")]
    # Ten sections; a reply cut off at max_tokens is asked for again with more room.
    assert len({b["messages"][-1]["content"].split('"')[1] for b in drafts}) == 10
    assert all("fastapi==0.115.0" in b["messages"][0]["content"] for b in drafts)
    assert all("<research-notes" in b["messages"][0]["content"] for b in drafts)
    references = (CASSETTES / "openai-tid-research.md").read_text(encoding="utf-8")
    references = references.split("## References", 1)[1]
    assert "000_PADR|Relay.md" in references and "001_FPRD|Webhook_Delivery.md" in references
    assert "`fastapi==0.115.0`" in references
