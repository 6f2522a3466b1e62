"""The OpenAI provider against the fault-injecting server: retries, fail-fast, time bounds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.core.errors import ProviderError
from agent.core.settings import Settings
from agent.core.templates import get_template
from agent.draft.sections import SectionFailed
from agent.pipeline.generate import run_generate
from agent.providers.base import Message, Request
from agent.providers.openai import OpenAIProvider
from agent.providers.retry import RetryPolicy, retry_after
from tests.faultserver import Fault, FaultServer

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
SCHEMA = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
FAST = RetryPolicy(max_retries=2, base_s=0.001, cap_s=0.01)


def provider(
    server: FaultServer, *, timeout: float = 5.0, retry: RetryPolicy = FAST
) -> OpenAIProvider:
    return OpenAIProvider(
        "gpt-4.1-mini", api_key="test", base_url=server.base_url, timeout=timeout, retry=retry
    )


def request() -> Request:
    return Request(
        prompt_id="draft_section",
        prompt_version="1",
        label="overview",
        messages=[Message(role="system", content="the TDD"), Message(role="user", content="go")],
        schema_name="section_overview",
        json_schema=SCHEMA,
        max_tokens=200,
    )


async def call(server: FaultServer, **kw: object) -> str:
    p = provider(server, **kw)  # type: ignore[arg-type]
    try:
        return (await p.complete(request())).text
    finally:
        await p.aclose()


@pytest.mark.parametrize("kind", ["429", "500", "503", "529", "reset", "truncated"])
def test_transient_faults_are_retried_and_then_succeed(kind: str) -> None:
    with FaultServer(faults=[Fault(kind), Fault(kind)]) as server:  # type: ignore[arg-type]
        text = asyncio.run(call(server))
        assert server.requests == 3
    assert '"summary"' in text


def test_retries_run_out_with_one_line_naming_the_fix() -> None:
    with FaultServer(faults=[Fault("503")] * 3) as server:
        with pytest.raises(ProviderError, match="503") as err:
            asyncio.run(call(server))
        assert server.requests == 3
    assert "\n" not in str(err.value)


def test_retry_after_is_honoured_over_a_shorter_backoff() -> None:
    with FaultServer(faults=[Fault("429", retry_after=0.25)]) as server:
        started = time.perf_counter()
        asyncio.run(call(server))
        waited = server.times[1] - server.times[0]
    assert server.requests == 2
    assert waited >= 0.25
    assert time.perf_counter() - started < 2


def test_retry_after_header_forms() -> None:
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


@pytest.mark.parametrize(
    ("kind", "fix"),
    [
        ("400", r"request was rejected \(HTTP 400"),
        ("401", "check OPENAI_API_KEY"),
        ("quota", "add credit"),
    ],
)
def test_permanent_faults_fail_fast_without_retrying(kind: str, fix: str) -> None:
    with FaultServer(faults=[Fault(kind)] * 3) as server:  # type: ignore[arg-type]
        with pytest.raises(ProviderError, match=fix):
            asyncio.run(call(server))
        assert server.requests == 1


@pytest.mark.parametrize("kind", ["stall", "trickle"])
def test_a_stalled_or_trickling_server_is_bounded_by_the_call_timeout(kind: str) -> None:
    # A trickle sends a byte every 50 ms: no read timeout fires, only the wall clock.
    fault = Fault(kind, seconds=5.0 if kind == "stall" else 0.05)  # type: ignore[arg-type]
    with FaultServer(faults=[fault] * 2) as server:
        started = time.perf_counter()
        with pytest.raises(ProviderError, match="raise --timeout"):
            asyncio.run(call(server, timeout=0.3, retry=RetryPolicy(max_retries=1, base_s=0.001)))
        elapsed = time.perf_counter() - started
        assert server.requests == 2
    assert elapsed < 1.5


def _generate(server: FaultServer, tmp_path: Path) -> object:
    template = get_template("tid")

    async def go() -> object:
        p = provider(server)
        try:
            return await run_generate(
                FIXTURE,
                settings=Settings(concurrency=4, review="off"),
                provider=p,
                template=template,
                out=tmp_path,
            )
        finally:
            await p.aclose()

    return asyncio.run(go())


def test_a_cut_off_section_is_asked_again_once_with_more_room(tmp_path: Path) -> None:
    template = get_template("tid")
    first = template.sections[1].id
    with FaultServer(by_schema={f"section_{first}": [Fault("length")]}) as server:
        doc = _generate(server, tmp_path)
        assert server.count(f"section_{first}") == 2
        assert server.requests == len(template.sections) + 1
        sent = [
            b for b in server.bodies if b["response_format"]["json_schema"]["name"].endswith(first)
        ]
    # The same request would be cut again: the retry asks for a longer reply, not a repair.
    limits = [b["max_completion_tokens"] for b in sent]
    assert limits[1] > limits[0]
    assert sent[1]["messages"] == sent[0]["messages"]
    calls = [c for c in doc.record.calls if c.section == first]  # type: ignore[attr-defined]
    assert [c.ok for c in calls] == [False, True]
    assert "cut off" in calls[0].error


@pytest.mark.parametrize("kind", ["refusal", "content_filter"])
def test_a_refused_or_filtered_section_is_not_asked_again(kind: str, tmp_path: Path) -> None:
    template = get_template("tid")
    first = template.sections[1].id
    with FaultServer(by_schema={f"section_{first}": [Fault(kind)]}) as server:  # type: ignore[arg-type]
        with pytest.raises(SectionFailed) as info:
            _generate(server, tmp_path)
        assert server.count(f"section_{first}") == 1
        received = server.requests
    message = str(info.value)
    assert ("refused" if kind == "refusal" else "content filter") in message
    assert "larger model" not in message and "\n" not in message
    # The run record of the failed run lists every call the server received.
    record = info.value.run_record  # type: ignore[attr-defined]
    assert record.status == "failed"
    assert record.totals.calls == received
    saved = next((tmp_path / ".tidsmith").glob("*.run.json"))
    assert '"status": "failed"' in saved.read_text() or '"status":"failed"' in saved.read_text()
