"""tidsmith update: only the sections whose tdd_refs name a changed heading are re-drafted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.core.settings import Settings
from agent.core.templates import get_template
from agent.pipeline.generate import run_generate
from agent.providers.base import Request
from agent.providers.fake import FakeProvider, sample_instance
from agent.update.document import aupdate_document, section_spans

TDD = """\
# TDD: Webhooks

## Storage

Deliveries are stored in Postgres, table `deliveries`.

## API

`POST /webhooks` registers an endpoint.

## Retries

Failed deliveries are retried 5 times with backoff.
"""

# Which TDD headings each TID section says it drew on.
REFS = {
    "implementation_strategy": ["Storage", "API"],
    "code_structure": ["Storage"],
    "integration_points": ["API"],
    "configuration": ["Retries"],
}


def responder(request: Request) -> str:
    content = sample_instance(request.json_schema, request.label)
    content["tdd_refs"] = REFS.get(request.label, ["Retries"])
    for row in content.get("directory_structure", []):
        row["path"] = "app.py"  # a file the tests' codebase has: the tree claims nothing drifted
    text = json.dumps(content)
    if request.prompt_id == "update_section":
        # Every sample string starts with the section's name: upper-case it (same length,
        # so the bounds still hold) to mark the section as updated.
        name = request.label.replace("_", " ")
        text = text.replace(f'"{name}', f'"{name.upper()}')
    return text


def generate(tmp_path: Path) -> tuple[Path, Path]:
    tdd = tmp_path / "tdds" / "001_FTDD|Webhooks.md"
    tdd.parent.mkdir()
    tdd.write_text(TDD)
    settings = Settings(template="tid", review="off")
    doc = asyncio.run(
        run_generate(tdd, settings=settings, provider=FakeProvider(responder=responder))
    )
    assert doc.path is not None
    return tdd, Path(doc.path)


def sections_of(doc: Path) -> dict[str, str]:
    text = doc.read_text()
    lines = text.splitlines(keepends=True)
    spans = section_spans(text, get_template("tid"))
    return {sid: "".join(lines[a:b]) for sid, (a, b) in spans.items()}


def test_only_sections_naming_the_changed_heading_are_redrafted(tmp_path: Path) -> None:
    tdd, doc = generate(tmp_path)
    before = doc.read_text()
    old = sections_of(doc)
    tdd.write_text(
        TDD.replace(
            "registers an endpoint.", "registers an endpoint; `DELETE /webhooks/{id}` removes it."
        )
    )
    fake = FakeProvider(responder=responder)
    result = asyncio.run(aupdate_document(doc, provider=fake))
    assert result.changed == ["API"]
    # implementation_strategy and integration_points name "API"; nothing else does.
    assert sorted(result.affected) == ["implementation_strategy", "integration_points"]
    assert len(fake.requests) == 2
    assert {r.label for r in fake.requests} == {"implementation_strategy", "integration_points"}
    assert all(r.prompt_id == "update_section" for r in fake.requests)
    assert "DELETE /webhooks/{id}" in fake.requests[0].messages[-1].content
    new = sections_of(doc)
    for sid, text in old.items():
        if sid in result.affected:
            assert new[sid] != text
        else:
            assert new[sid] == text, sid
    # The header and everything outside the two sections are byte for byte the same.
    assert doc.read_text().splitlines()[:8] == before.splitlines()[:8]
    assert result.diff.startswith("---")
    record = json.loads((doc.parent / ".tidsmith" / f"{doc.stem}.run.json").read_text())
    assert record["updates"][0]["sections"] == result.redrafted
    assert record["updates"][0]["totals"]["calls"] == 2
    # Updating again with no TDD change does nothing.
    again = FakeProvider(responder=responder)
    assert asyncio.run(aupdate_document(doc, provider=again)).affected == {}
    assert again.requests == []


def test_a_hand_edited_section_is_listed_not_touched(tmp_path: Path) -> None:
    tdd, doc = generate(tmp_path)
    heading = "## 4. Integration Points"
    text = doc.read_text()
    assert heading in text
    edited = text.replace(heading, heading + "\n\nA note a person added.", 1)
    doc.write_text(edited)
    tdd.write_text(TDD.replace("registers an endpoint.", "registers a URL."))
    fake = FakeProvider(responder=responder)
    result = asyncio.run(aupdate_document(doc, provider=fake))
    assert result.kept_edited == ["integration_points"]
    assert [r.label for r in fake.requests] == ["implementation_strategy"]
    assert "A note a person added." in doc.read_text()
    assert sections_of(doc)["integration_points"].startswith(heading + "\n\nA note a person added.")
    forced = FakeProvider(responder=responder)
    tdd.write_text(TDD.replace("registers an endpoint.", "registers a URL, twice."))
    result = asyncio.run(aupdate_document(doc, provider=forced, force_sections=True))
    assert sorted(r.label for r in forced.requests) == [
        "implementation_strategy",
        "integration_points",
    ]
    assert "A note a person added." not in doc.read_text()


def test_dry_run_lists_sections_and_calls_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tdd, doc = generate(tmp_path)
    before = doc.read_text()
    tdd.write_text(TDD.replace("retried 5 times", "retried 8 times"))
    assert main(["update", str(doc), "--dry-run", "--model", "fake"]) == 0
    out = capsys.readouterr().out
    assert "TDD headings changed: Retries" in out
    assert "dry run: 7 sections would be re-drafted" in out
    assert doc.read_text() == before


def test_a_hand_written_document_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\n\n## 1. Implementation Strategy\n\nWritten by hand.\n")
    assert main(["update", str(doc)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "update needs a document tidsmith wrote" in err[0]


def test_codebase_drift_redrafts_the_section_that_makes_the_claim(tmp_path: Path) -> None:
    def claims(request: Request) -> str:
        text = responder(request)
        if request.label == "configuration" and request.prompt_id == "draft_section":
            # A claim no code backs: the env variable is read nowhere.
            text = text.replace('"configuration ', '"`WEBHOOK_SECRET_KEY` ', 1)
        return text

    tdd = tmp_path / "tdds" / "001_FTDD|Webhooks.md"
    tdd.parent.mkdir()
    tdd.write_text(TDD)
    settings = Settings(template="tid", review="off")
    written = asyncio.run(
        run_generate(tdd, settings=settings, provider=FakeProvider(responder=claims))
    )
    doc = Path(str(written.path))
    assert "`WEBHOOK_SECRET_KEY`" in sections_of(doc)["configuration"]
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text('import os\n\nPORT = os.environ["PORT_NUMBER"]\n')
    fake = FakeProvider(responder=responder)
    result = asyncio.run(aupdate_document(doc, codebase=code, provider=fake))
    assert result.changed == []
    assert [r.label for r in fake.requests] == ["configuration"]
    assert "WEBHOOK_SECRET_KEY" in fake.requests[0].messages[-1].content


def test_an_updated_section_is_checked_against_the_tdd_as_a_first_draft_is(
    tmp_path: Path,
) -> None:
    tdd, doc = generate(tmp_path)
    tdd.write_text(TDD.replace("registers an endpoint.", "registers an endpoint (`GET` lists)."))

    def wrong_method(request: Request) -> str:
        if request.prompt_id != "update_section":
            return responder(request)
        content = sample_instance(request.json_schema, request.label)
        content["tdd_refs"] = REFS.get(request.label, ["API"])
        if request.label == "integration_points":
            content["integration_summary"][0]["mechanism"] = "GET /webhooks"
        return json.dumps(content)

    asyncio.run(aupdate_document(doc, provider=FakeProvider(responder=wrong_method)))
    updated = sections_of(doc)["integration_points"]
    # The TDD gives /webhooks one method, POST: the update's GET is put right.
    assert "POST /webhooks" in updated and "GET /webhooks" not in updated
