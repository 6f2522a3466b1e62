"""The pipeline end to end on the fake provider: order, prefix, retry, failure."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.core.errors import InputError
from agent.core.settings import Settings
from agent.core.templates import get_template
from agent.draft.sections import SectionFailed
from agent.pipeline.generate import run_generate
from agent.providers.base import Reply, Request
from agent.providers.fake import FakeProvider, sample_instance

TDD = """# Technical Design Document: Billing Export

**Document ID:** 001_FTDD|Billing_Export
**Related PRD:** [001_FPRD|Billing_Export](../prds/001_FPRD|Billing_Export.md)

## 1. Architecture

The ExportService reads invoices from PostgreSQL and writes CSV files to S3.

## 2. API

POST /api/v1/exports starts an export; GET /api/v1/exports/{id} polls it.
"""


@pytest.fixture
def tdd_file(tmp_path: Path) -> Path:
    path = tmp_path / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
    path.parent.mkdir(parents=True)
    path.write_text(TDD, encoding="utf-8")
    return path


def run(
    tdd: Path, provider: FakeProvider, template: str = "tid", review: str = "off", **kw: object
) -> object:
    # Review is off unless a test asks for it: these tests count draft calls.
    settings = Settings(template=template, concurrency=3, review=review)  # type: ignore[arg-type]
    return asyncio.run(
        run_generate(tdd, settings=settings, provider=provider, today="2026-01-02", **kw)  # type: ignore[arg-type]
    )


def test_tid_has_every_section_in_order_and_follows_the_naming_convention(tdd_file: Path) -> None:
    provider = FakeProvider()
    doc = run(tdd_file, provider)
    template = get_template("tid")
    expected = tdd_file.parent.parent / "tids" / "001_FTID|Billing_Export.md"
    assert doc.path == str(expected)  # type: ignore[attr-defined]
    text = expected.read_text(encoding="utf-8")
    positions = [text.index(f"## {i}. {s.title}") for i, s in enumerate(template.sections, 1)]
    assert positions == sorted(positions)
    assert len(provider.requests) == len(template.sections)
    assert text.startswith("# Technical Implementation Document: Billing Export")
    assert "[001_FTDD|Billing_Export](../tdds/001_FTDD|Billing_Export.md)" in text
    record = json.loads((expected.parent / ".tidsmith" / f"{expected.stem}.run.json").read_text())
    assert record["template"] == "tid"
    assert record["prompts"]["draft_section"]
    assert len(record["calls"]) == len(template.sections)
    assert record["totals"]["cost_usd"] == 0.0


def test_every_section_request_starts_with_the_same_bytes(tdd_file: Path) -> None:
    provider = FakeProvider()
    run(tdd_file, provider)
    firsts = {r.messages[0].content for r in provider.requests}
    assert len(firsts) == 1
    assert TDD.strip() in next(iter(firsts))
    # Only the section instructions differ.
    assert len({r.messages[1].content for r in provider.requests}) == len(provider.requests)


def test_first_call_goes_alone_then_the_rest_share_the_limit(tdd_file: Path) -> None:
    provider = FakeProvider(delay=0.01)
    order: list[str] = []

    def spy(request: Request) -> str:
        order.append(request.label)
        return json.dumps(sample_instance(request.json_schema))

    provider = FakeProvider(responder=spy, delay=0.01)
    run(tdd_file, provider)
    assert order[0] == get_template("tid").sections[0].id
    assert provider.max_in_flight == 3


def test_invalid_json_is_asked_again_once_with_the_error(tdd_file: Path) -> None:
    provider = FakeProvider(replies=["{not json"])
    doc = run(tdd_file, provider)
    first_section = doc.sections[0]  # type: ignore[attr-defined]
    assert [c.attempt for c in first_section.calls] == [1, 2]
    retry = provider.requests[1]
    assert retry.label == first_section.section_id
    assert retry.messages[-2].role == "assistant"
    assert "not valid JSON" in retry.messages[-1].content


def test_a_section_that_never_validates_fails_clearly_and_writes_nothing(tdd_file: Path) -> None:
    bad = Reply(text='{"oops": 1}')
    provider = FakeProvider(replies=[bad, bad])
    with pytest.raises(SectionFailed) as info:
        run(tdd_file, provider)
    message = str(info.value)
    assert "Implementation Strategy" in message
    assert "draft_section" in message
    tids = tdd_file.parent.parent / "tids"
    # No document; only the failed run's record, with both paid calls in it.
    assert [p.name for p in tids.iterdir()] == [".tidsmith"]
    record = info.value.run_record  # type: ignore[attr-defined]
    assert (record.status, record.totals.calls) == ("failed", 2)


def test_truncated_reply_is_reported_as_truncation(tdd_file: Path) -> None:
    cut = Reply(text='{"methodology": "abc', finish_reason="length")
    provider = FakeProvider(replies=[cut, cut])
    with pytest.raises(SectionFailed, match="cut off at max_tokens"):
        run(tdd_file, provider)


def test_refusal_is_not_parsed(tdd_file: Path) -> None:
    refused = Reply(text="", refusal="I can't help with that")
    provider = FakeProvider(replies=[refused, refused])
    with pytest.raises(SectionFailed, match="refused"):
        run(tdd_file, provider)


def test_existing_output_is_not_overwritten_and_no_call_is_made(tdd_file: Path) -> None:
    target = tdd_file.parent.parent / "tids" / "001_FTID|Billing_Export.md"
    target.parent.mkdir()
    target.write_text("mine", encoding="utf-8")
    provider = FakeProvider()
    with pytest.raises(InputError, match="--force"):
        run(tdd_file, provider)
    assert provider.requests == []
    assert target.read_text(encoding="utf-8") == "mine"
    run(tdd_file, FakeProvider(), force=True)
    assert target.read_text(encoding="utf-8").startswith("# Technical Implementation Document")


def test_spec_template_writes_a_spec_with_related_documents(tdd_file: Path) -> None:
    doc = run(tdd_file, FakeProvider(), template="spec")
    text = Path(doc.path).read_text(encoding="utf-8")  # type: ignore[attr-defined]
    assert Path(doc.path).name == "001_FSPEC|Billing_Export.md"  # type: ignore[attr-defined]
    assert text.startswith("# Technical Implementation Spec: Billing Export")
    assert "## TL;DR" in text
    assert "## Related Documents" in text
    assert "../prds/001_FPRD|Billing_Export.md" in text
    assert len(text.split()) <= 1500


def test_small_context_gets_per_section_excerpts(tdd_file: Path) -> None:
    big = TDD + "\n".join(f"\n## {i}. Topic {i}\n\n" + "filler words " * 300 for i in range(3, 12))
    tdd_file.write_text(big, encoding="utf-8")
    provider = FakeProvider(context_window=4096)
    doc = run(tdd_file, provider)
    assert doc.record.shared_prefix is False  # type: ignore[attr-defined]
    for request in provider.requests:
        assert "Billing Export" in request.messages[0].content
        assert len(request.messages[0].content) < len(big)


def test_each_section_ask_lists_the_tdd_names_it_is_likely_to_need(tdd_file: Path) -> None:
    provider = FakeProvider()
    run(tdd_file, provider)
    draft_asks = [r for r in provider.requests if r.prompt_id == "draft_section"]
    assert draft_asks
    for request in draft_asks:
        ask = request.messages[-1].content
        assert "Names from the TDD this section is likely to need" in ask
        assert "`ExportService`" in ask and "`PostgreSQL`" in ask


def test_a_tdd_without_names_gets_no_names_line(tdd_file: Path) -> None:
    tdd_file.write_text(
        TDD.replace("ExportService", "export service")
        .replace("PostgreSQL", "a database")
        .replace("POST /", "post to /")
        .replace("GET /", "get /"),
        encoding="utf-8",
    )
    provider = FakeProvider()
    run(tdd_file, provider)
    assert all("Names from the TDD" not in r.messages[-1].content for r in provider.requests)
