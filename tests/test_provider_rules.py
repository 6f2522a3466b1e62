"""What the OpenAI and Anthropic paths send, and what a user reads when a call fails.

Both vendors are answered by hand-made fixtures in their documented response
and error shapes (tests/faultserver.py for the OpenAI protocol over loopback
HTTP; an httpx2 mock transport for the Anthropic SDK). Each case counts the
requests the server received and checks every request body against the rules
the real APIs enforce (no empty message, the right token parameter).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel, Field

from agent.core.cost import call_cost
from agent.core.errors import ConfigError, ProviderError
from agent.core.records import Usage
from agent.draft.calls import structured_call
from agent.draft.prompting import load_prompt
from agent.providers.anthropic import AnthropicProvider
from agent.providers.base import Message, Request
from agent.providers.openai import OpenAIProvider
from agent.providers.retry import RetryPolicy
from tests.faultserver import Fault, FaultServer

FAST = RetryPolicy(max_retries=2, base_s=0.001, cap_s=0.01)
MESSAGES = [
    Message(role="system", content="the TDD"),
    Message(role="user", content="Write the section."),
]


class Section(BaseModel):
    summary: str = Field(max_length=400, description="one paragraph")


def _structured(provider: Any) -> tuple[Any, list[Any], str]:
    async def go() -> tuple[Any, list[Any], str]:
        try:
            return await structured_call(
                provider,
                load_prompt("draft_section"),
                Section,
                list(MESSAGES),
                label="overview",
                schema_name="section_overview",
                max_tokens=300,
            )
        finally:
            await provider.aclose()

    return asyncio.run(go())


# ---- OpenAI: request shape per model family ----


def _request() -> Request:
    return Request(
        prompt_id="draft_section",
        prompt_version="1",
        label="overview",
        messages=list(MESSAGES),
        schema_name="section_overview",
        json_schema=Section.model_json_schema(),
        max_tokens=300,
    )


@pytest.mark.parametrize(
    "model", ["gpt-5-mini", "gpt-5.1", "gpt-5.2-pro", "o3", "o4-mini-2025-04-16"]
)
def test_reasoning_models_get_max_completion_tokens_and_no_temperature(model: str) -> None:
    body = OpenAIProvider(model, api_key="t").chat_body(_request())
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body and "temperature" not in body


def test_reasoning_effort_is_sent_where_offered_and_refused_where_not() -> None:
    body = OpenAIProvider("gpt-5.1", api_key="t", reasoning_effort="low").chat_body(_request())
    assert body["reasoning_effort"] == "low"
    # gpt-5-mini's table default keeps short drafts from spending their limit thinking.
    assert OpenAIProvider("gpt-5-mini", api_key="t").chat_body(_request())["reasoning_effort"]
    with pytest.raises(ConfigError, match=r"not offered by gpt-4\.1"):
        OpenAIProvider("gpt-4.1", api_key="t", reasoning_effort="high")


def test_a_compatible_server_model_keeps_the_classic_shape() -> None:
    provider = OpenAIProvider("qwen2.5-coder:7b", api_key="t", base_url="http://127.0.0.1:9/v1")
    body = provider.chat_body(_request())
    assert body["max_tokens"] == 300 and body["temperature"] == 0.2
    # Native strict mode on any server that has it, not only api.openai.com.
    assert body["response_format"]["json_schema"]["strict"] is True


def test_dated_ids_price_like_their_family_and_unknown_is_none() -> None:
    class P:
        def __init__(self, name: str, model: str) -> None:
            self.name, self.model = name, model

    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert call_cost(P("openai", "gpt-4o-2024-08-06"), usage) == call_cost(
        P("openai", "gpt-4o"), usage
    )
    assert call_cost(P("anthropic", "claude-sonnet-4-5-20250929"), usage) == 18.0
    assert call_cost(P("openai", "my-finetune"), usage) is None
    # No usage reported: unknown, never $0.
    assert call_cost(P("openai", "gpt-4o"), None) is None


def test_anthropic_cache_writes_cost_one_and_a_quarter_input() -> None:
    class P:
        name, model = "anthropic", "claude-sonnet-4-6"

    written = Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000)
    read = Usage(input_tokens=1_000_000, cached_tokens=1_000_000)
    fresh = Usage(input_tokens=1_000_000)
    assert call_cost(P(), fresh) == 3.0
    assert call_cost(P(), written) == 3.75
    assert call_cost(P(), read) == pytest.approx(0.30)


# ---- OpenAI protocol: failures at a loopback server ----


def _openai(server: FaultServer, **kw: Any) -> OpenAIProvider:
    return OpenAIProvider(
        "gpt-4.1-mini",
        api_key="sk-test-0123456789abcdef",
        base_url=server.base_url,
        retry=FAST,
        **kw,
    )


def _bodies_have_no_empty_message(server: FaultServer) -> None:
    for body in server.bodies:
        assert all(m["content"].strip() for m in body["messages"]), body["messages"]


@pytest.mark.parametrize(
    ("kind", "requests", "says"),
    [
        (
            "400",
            1,
            "rejected (HTTP 400, invalid_request_error, request req_fault1): Invalid schema",
        ),
        ("401", 1, "API key was rejected (HTTP 401"),
        ("404", 1, "The model `gpt-nope` does not exist"),
        ("quota", 1, "out of quota or credit (HTTP 429, insufficient_quota"),
        ("429", 3, "rate limited after 2 retries (HTTP 429"),
        ("500", 3, "server failed after 2 retries (HTTP 500"),
        ("529", 3, "overloaded after 2 retries (HTTP 529"),
    ],
)
def test_openai_errors_are_one_line_with_the_api_text_status_and_request_id(
    kind: str, requests: int, says: str
) -> None:
    with FaultServer(faults=[Fault(kind)] * 3) as server:  # type: ignore[arg-type]
        with pytest.raises(ProviderError) as info:
            _structured(_openai(server))
        assert server.requests == requests
    message = str(info.value)
    assert says in message
    assert "\n" not in message and "sk-test" not in message
    # The status once: no "Error code: 400 - {...}" echo of the SDK's own text.
    assert message.count("(HTTP ") == 1
    assert "Error code" not in message


@pytest.mark.parametrize(
    ("kind", "requests", "says"),
    [("refusal", 1, "refused"), ("content_filter", 1, "content filter"), ("empty", 2, "empty")],
)
def test_openai_replies_without_usable_text(kind: str, requests: int, says: str) -> None:
    with FaultServer(faults=[Fault(kind)] * 2) as server:  # type: ignore[arg-type]
        parsed, calls, error = _structured(_openai(server))
        assert server.requests == requests
        _bodies_have_no_empty_message(server)
    assert parsed is None and says in error and len(calls) == requests


def test_a_length_cut_reply_is_asked_again_with_more_room_not_the_same_limit() -> None:
    with FaultServer(faults=[Fault("length"), Fault("length")]) as server:
        parsed, _, error = _structured(_openai(server))
        limits = [b["max_completion_tokens"] for b in server.bodies]
    assert parsed is None and "cut off" in error
    assert limits[0] == 300 and limits[1] > 300 and len(limits) == 2


def test_auto_falls_back_when_a_server_says_it_has_no_json_schema() -> None:
    with FaultServer(faults=[Fault("unsupported")]) as server:  # type: ignore[arg-type]
        _structured(_openai(server, fallback=True))
        first, second = server.bodies[:2]
    assert first["response_format"]["type"] == "json_schema"
    assert second["response_format"] == {"type": "json_object"}
    # The schema now travels in the prompt, since the field is gone.
    assert '"summary"' in second["messages"][-1]["content"]


def test_without_auto_an_unsupported_mode_is_an_error() -> None:
    with FaultServer(faults=[Fault("unsupported")]) as server:  # type: ignore[arg-type]
        with pytest.raises(ProviderError, match="json_schema is not supported"):
            _structured(_openai(server))
        assert server.requests == 1


@pytest.mark.parametrize(
    "envelope",
    [
        {"choices": "nope"},
        {"choices": ["a string"]},
        {"choices": [{"message": "text", "finish_reason": "stop"}]},
        {"choices": [{"message": {"content": 42}, "finish_reason": "stop"}]},
        {"choices": [{"message": {"content": "{}"}}], "usage": "lots"},
        {"choices": [{"message": {"content": "{}"}}], "usage": {"prompt_tokens": -5}},
        {"choices": [{"message": {"content": "{}"}}], "usage": {"prompt_tokens": 1.5}},
        [1, 2],
    ],
)
def test_malformed_envelopes_are_one_line_provider_errors(envelope: Any) -> None:
    from agent.providers.openai import reply_of

    with pytest.raises(ProviderError, match="not a valid chat response") as info:
        reply_of(envelope, "m", "openai:m")
    assert "\n" not in str(info.value)


def test_missing_usage_is_unknown_not_zero() -> None:
    from agent.providers.openai import reply_of

    reply = reply_of({"choices": [{"message": {"content": "{}"}}]}, "m", "w")
    assert reply.usage is None


# ---- Anthropic: replies without text, and what the re-ask sends ----


def _anthropic_message(content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": "msg_fixture",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 0},
    }


class Script:
    """Answers the Anthropic SDK with queued bodies; records every request."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(json.loads(request.content))
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx2.Response(status, json=body, headers={"request-id": "req_ant_1"})


def _anthropic(script: Script) -> AnthropicProvider:
    return AnthropicProvider(
        "claude-sonnet-4-6",
        api_key="sk-ant-test-0123456789",
        retry=FAST,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(script)),
    )


GOOD = _anthropic_message([{"type": "text", "text": '{"summary": "ok"}'}], "end_turn")


@pytest.mark.parametrize(
    ("reply", "requests", "says"),
    [
        (_anthropic_message([], "refusal"), 1, "refused"),
        (_anthropic_message([{"type": "text", "text": ""}], "end_turn"), 2, None),
        (
            _anthropic_message(
                [{"type": "thinking", "thinking": "hmm", "signature": "s"}], "max_tokens"
            ),
            2,
            None,
        ),
        (
            _anthropic_message(
                [{"type": "tool_use", "id": "toolu_1", "name": "x", "input": {}}], "tool_use"
            ),
            2,
            None,
        ),
    ],
)
def test_anthropic_replies_without_text_never_lead_to_an_empty_message(
    reply: dict[str, Any], requests: int, says: str | None
) -> None:
    script = Script((200, reply), (200, GOOD))
    parsed, _, error = _structured(_anthropic(script))
    assert len(script.requests) == requests
    for sent in script.requests:
        for m in sent["messages"]:
            assert str(m["content"]).strip(), sent
    if says is None:
        assert parsed is not None
    else:
        assert parsed is None and says in error
    if reply["stop_reason"] == "max_tokens":
        # Cut off: asked again with a larger limit, the conversation unchanged.
        assert script.requests[1]["max_tokens"] > script.requests[0]["max_tokens"]
        assert script.requests[1]["messages"] == script.requests[0]["messages"]


@pytest.mark.parametrize(
    ("status", "kind", "text", "requests", "says"),
    [
        (
            400,
            "invalid_request_error",
            "max_tokens: too large",
            1,
            "rejected (HTTP 400, request req_ant_1): max_tokens",
        ),
        (401, "authentication_error", "invalid x-api-key", 1, "check ANTHROPIC_API_KEY"),
        (
            404,
            "not_found_error",
            "model: claude-nope",
            1,
            "not found (HTTP 404, request req_ant_1): model: claude-nope",
        ),
        (429, "rate_limit_error", "slow down", 3, "rate limited after 2 retries"),
        (529, "overloaded_error", "Overloaded", 3, "overloaded after 2 retries"),
        (500, "api_error", "boom", 3, "server failed after 2 retries"),
    ],
)
def test_anthropic_errors_are_one_line(
    status: int, kind: str, text: str, requests: int, says: str
) -> None:
    body = {"type": "error", "error": {"type": kind, "message": text}}
    script = Script((status, body))
    with pytest.raises(ProviderError) as info:
        _structured(_anthropic(script))
    assert len(script.requests) == requests
    message = str(info.value)
    assert says in message and "\n" not in message and "sk-ant-test" not in message


# ---- a whole run: its deadline, and its record when it fails ----


def test_generate_deadline_bounds_a_stalled_run_and_keeps_its_record(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from agent.cli.main import main

    tdd = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
    # Sections after the first stall far past the deadline; the first is answered.
    faults = [Fault("ok")] + [Fault("stall", seconds=30.0)] * 20
    with FaultServer(faults=faults) as server:
        args = ["generate", str(tdd), "-m", "openai:gpt-4.1-mini", "--base-url", server.base_url]
        args += ["--out", str(tmp_path), "--deadline", "3", "--review", "off", "-q"]
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
        started = time.perf_counter()
        code = main(args)
        elapsed = time.perf_counter() - started
    assert code == 1
    assert elapsed < 20
    err = capsys.readouterr().err
    assert "passed --deadline 3s" in err
    assert not list(tmp_path.glob("*.md"))
    record = json.loads(next((tmp_path / ".tidsmith").glob("*.run.json")).read_text())
    assert record["status"] == "failed"
    # The answered first section is in it when it came back before the deadline.
    if record["totals"]["calls"]:
        assert record["totals"]["input_tokens"] > 0 and "spent before stopping" in err


def test_a_failed_run_prints_what_it_spent(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.exits import print_spent
    from agent.core.records import RunRecord, Totals

    error = RuntimeError("x")
    error.run_record = RunRecord(  # type: ignore[attr-defined]
        status="failed",
        model="openai:gpt-4o",
        template="tid",
        template_version="1",
        prompts={},
        tdd_path="t.md",
        tdd_sha256="0",
        started_at="now",
        totals=Totals(calls=3, input_tokens=1200, output_tokens=300, cost_usd=None),
    )
    print_spent(error)
    assert capsys.readouterr().err == (
        "tidsmith: spent before stopping: 3 calls, 1200 input + 300 output tokens, unknown cost\n"
    )


def test_deadline_must_be_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    for bad in ["0", "-1", "nan"]:
        with pytest.raises(SystemExit) as info:
            main(["generate", "x.md", "-m", "fake", "--deadline", bad])
        assert info.value.code == 2
        assert "--deadline" in capsys.readouterr().err
