"""AnthropicProvider against a mocked Messages endpoint: the body sent, the reply read, errors.

The 200 body is `fixtures/anthropic_messages_response.json`, a hand-made
fixture in the response shape Anthropic documents for `POST /v1/messages`,
not a recording. The anthropic 2.x SDK sends HTTP through `httpx2`, so the
mock is an `httpx2.MockTransport` on an `httpx2.AsyncClient`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel, Field

from agent.core.errors import ProviderError
from agent.providers.anthropic import (
    AnthropicProvider,
    StructuredMode,
    output_schema,
    takes_temperature,
)
from agent.providers.base import Message, Provider, Reply, Request

KEY = "sk-ant-api03-FAKE-test-key-0123456789abcdef"
FIXTURE = Path(__file__).parent / "fixtures" / "anthropic_messages_response.json"
SYSTEM = "You write Technical Implementation Documents.\n\n# TDD: Billing Export\n..."


class Section(BaseModel):
    summary: str = Field(max_length=400, description="one paragraph")
    steps: list[str] = Field(max_length=6, description="the steps, in order")


def make_request(messages: list[Message] | None = None) -> Request:
    return Request(
        prompt_id="draft_section",
        prompt_version="3",
        label="key_algorithms",
        messages=messages
        or [
            Message(role="system", content=SYSTEM),
            Message(role="user", content="Write the Key Algorithms section."),
        ],
        schema_name="Section",
        json_schema=Section.model_json_schema(),
        max_tokens=900,
        temperature=0.3,
    )


def fixture_body(**changes: Any) -> dict[str, Any]:
    body = json.loads(FIXTURE.read_text())
    body.update(changes)
    return body


def error_body(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["details"] = {"error_code": code}
    return {"type": "error", "error": error, "request_id": "req_fixture"}


Handler = Callable[[httpx2.Request], httpx2.Response]


class Endpoint:
    """Records every request the SDK sends and answers with one status and body."""

    def __init__(
        self,
        status: int = 200,
        body: dict[str, Any] | None = None,
        fail: Exception | None = None,
    ) -> None:
        self.status = status
        self.payload = fixture_body() if body is None else body
        self.fail = fail
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        return httpx2.Response(self.status, json=self.payload)

    @property
    def sent(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)


def make_provider(
    endpoint: Endpoint,
    structured: StructuredMode = "native",
    base_url: str | None = None,
    model: str = "claude-sonnet-4-6",
) -> AnthropicProvider:
    return AnthropicProvider(
        model,
        api_key=KEY,
        base_url=base_url,
        structured=structured,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(endpoint)),
    )


def call(provider: AnthropicProvider, request: Request | None = None) -> Reply:
    async def go() -> Reply:
        try:
            return await provider.complete(request or make_request())
        finally:
            await provider.aclose()

    return asyncio.run(go())


def failure(endpoint: Endpoint) -> str:
    with pytest.raises(ProviderError) as info:
        call(make_provider(endpoint))
    return str(info.value)


def test_is_a_provider_with_schema_in_text_only_in_schema_in_prompt_mode() -> None:
    native = make_provider(Endpoint())
    in_text = make_provider(Endpoint(), "schema-in-prompt", base_url="http://127.0.0.1:8080")
    assert isinstance(native, Provider)
    assert native.name == "anthropic"
    assert native.context_window == 200_000
    assert native.schema_in_text is False
    assert in_text.schema_in_text is True
    assert in_text.label == "anthropic:claude-sonnet-4-6 at http://127.0.0.1:8080"


def test_native_request_body() -> None:
    endpoint = Endpoint()
    call(make_provider(endpoint))
    sent = endpoint.sent
    request = endpoint.requests[-1]
    assert request.method == "POST"
    assert request.url.path == "/v1/messages"
    # anthropic 2.x sends the key as a bearer token, not as x-api-key.
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert sent["model"] == "claude-sonnet-4-6"
    assert sent["max_tokens"] == 900
    # The system prompt (template + TDD) is one cached block: the shared prefix.
    assert sent["system"] == [
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
    ]
    assert sent["messages"] == [{"role": "user", "content": "Write the Key Algorithms section."}]
    # anthropic 2.x create() has no temperature parameter; extra_body puts it top-level.
    assert sent["temperature"] == 0.3
    schema = sent["output_config"]["format"]["schema"]
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert schema == output_schema(Section.model_json_schema())
    assert "output_format" not in sent
    assert "tools" not in sent


def test_output_schema_is_what_anthropic_accepts_and_keeps_bounds_visible() -> None:
    original = Section.model_json_schema()
    before = copy.deepcopy(original)
    schema = output_schema(original)
    assert original == before
    assert schema["additionalProperties"] is False
    summary, steps = schema["properties"]["summary"], schema["properties"]["steps"]
    assert "maxLength" not in summary
    assert "maxItems" not in steps
    # Dropped bounds move into the description the model reads.
    assert "maxLength: 400" in summary["description"]
    assert "maxItems: 6" in steps["description"]


def test_schema_in_prompt_mode_sends_no_structured_output_fields() -> None:
    endpoint = Endpoint()
    call(make_provider(endpoint, "schema-in-prompt", base_url="http://127.0.0.1:8080"))
    sent = endpoint.sent
    assert endpoint.requests[-1].url.host == "127.0.0.1"
    assert "output_config" not in sent
    assert "output_format" not in sent
    assert "tools" not in sent
    assert sent["temperature"] == 0.3
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}


@pytest.mark.parametrize(
    ("model", "sent"),
    [
        ("claude-sonnet-4-5", True),
        ("claude-sonnet-4-5-20250929", True),
        ("claude-sonnet-4-20250514", True),
        ("claude-opus-4-6", True),
        ("claude-haiku-4-5-20251001", True),
        ("claude-3-7-sonnet-latest", True),
        ("claude-opus-4-7", False),
        ("claude-opus-4-8", False),
        ("claude-sonnet-5", False),
        ("claude-sonnet-5-5", False),
        ("claude-fable-5", False),
        ("SmolLM2-135M-Instruct", True),
    ],
)
@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
def test_temperature_only_where_the_model_takes_it(model: str, sent: bool) -> None:
    # Claude models after Opus 4.6 answer 400 "temperature is deprecated for this model".
    assert takes_temperature(model) is sent
    endpoint = Endpoint()
    call(make_provider(endpoint, model=model))
    assert ("temperature" in endpoint.sent) is sent


def test_retry_conversation_keeps_roles_and_joins_system_messages() -> None:
    endpoint = Endpoint()
    messages = [
        Message(role="system", content="part one"),
        Message(role="system", content="part two"),
        Message(role="user", content="draft it"),
        Message(role="assistant", content="{bad"),
        Message(role="user", content="fix the JSON"),
    ]
    call(make_provider(endpoint), make_request(messages))
    sent = endpoint.sent
    assert sent["system"][0]["text"] == "part one\n\npart two"
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_no_system_message_sends_no_system_field() -> None:
    endpoint = Endpoint()
    call(make_provider(endpoint), make_request([Message(role="user", content="hi")]))
    assert "system" not in endpoint.sent


def test_reply_fields() -> None:
    reply = call(make_provider(Endpoint()))
    assert json.loads(reply.text) == {
        "summary": "Export invoices to S3 as CSV.",
        "steps": ["read", "write"],
    }
    Section.model_validate_json(reply.text)
    assert reply.finish_reason == "stop"
    assert reply.refusal is None
    assert reply.model == "claude-sonnet-4-6"
    # Input counts cache reads (and writes), like OpenAI's prompt_tokens.
    assert reply.usage is not None
    assert reply.usage.input_tokens == 40 + 1800
    assert reply.usage.cached_tokens == 1800
    assert reply.usage.output_tokens == 25


def test_reply_model_is_the_one_that_answered() -> None:
    body = fixture_body(model="claude-haiku-4-5-20251001")
    assert call(make_provider(Endpoint(body=body))).model == "claude-haiku-4-5-20251001"


def test_cache_writes_count_as_input() -> None:
    body = fixture_body(
        usage={
            "input_tokens": 12,
            "cache_creation_input_tokens": 1800,
            "cache_read_input_tokens": 0,
            "output_tokens": 5,
        }
    )
    reply = call(make_provider(Endpoint(body=body)))
    assert reply.usage is not None
    assert reply.usage.input_tokens == 1812
    assert reply.usage.cache_write_tokens == 1800
    assert reply.usage.cached_tokens == 0


def test_text_blocks_are_joined_and_other_blocks_skipped() -> None:
    body = fixture_body(
        content=[
            {"type": "thinking", "thinking": "plan first", "signature": "sig"},
            {"type": "text", "text": '{"summary": "a", '},
            {"type": "text", "text": '"steps": ["b"]}'},
        ]
    )
    reply = call(make_provider(Endpoint(body=body)))
    assert reply.text == '{"summary": "a", "steps": ["b"]}'


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    reply = call(make_provider(Endpoint(body=fixture_body(stop_reason=stop_reason))))
    assert reply.finish_reason == finish
    assert reply.refusal is None


def test_refusal_sets_reply_refusal() -> None:
    body = fixture_body(
        stop_reason="refusal", content=[{"type": "text", "text": "I can't help with that."}]
    )
    reply = call(make_provider(Endpoint(body=body)))
    assert reply.refusal == "I can't help with that."
    assert reply.finish_reason == "refusal"


def test_refusal_without_text_still_sets_refusal() -> None:
    reply = call(make_provider(Endpoint(body=fixture_body(stop_reason="refusal", content=[]))))
    assert reply.refusal
    assert reply.text == ""


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            error_body("authentication_error", "invalid x-api-key"),
            "the API key was rejected (HTTP 401",
        ),
        (
            403,
            error_body("permission_error", "no access to this model"),
            "access denied (HTTP 403",
        ),
        (
            404,
            error_body("not_found_error", "model: claude-nope"),
            "not found (HTTP 404): model: claude-nope; check --model",
        ),
        (
            429,
            error_body("rate_limit_error", "Number of request tokens has exceeded your limit"),
            "(HTTP 429): Number of request tokens has exceeded your limit; lower --concurrency",
        ),
        (
            529,
            error_body("overloaded_error", "Overloaded"),
            "the API is overloaded (HTTP 529): Overloaded; try again in a few",
        ),
        (
            500,
            error_body("api_error", "Internal server error"),
            "the server failed (HTTP 500): Internal server error",
        ),
        (
            400,
            error_body("invalid_request_error", "output_config.format.schema: too complex"),
            "the request was rejected (HTTP 400): output_config.format.schema: too complex",
        ),
        (
            400,
            error_body(
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API.",
            ),
            "out of quota or credit (HTTP 400)",
        ),
        (
            402,
            error_body("billing_error", "payment required"),
            "out of quota or credit (HTTP 402",
        ),
        (
            429,
            error_body("rate_limit_error", "limit reached", code="enforced_spend_limit_reached"),
            "out of quota or credit (HTTP 429, enforced_spend_limit_reached)",
        ),
    ],
)
def test_error_statuses_map_to_one_line_provider_errors(
    status: int, body: dict[str, Any], expected: str
) -> None:
    message = failure(Endpoint(status=status, body=body))
    assert message.startswith("anthropic:claude-sonnet-4-6, section 'key_algorithms': ")
    assert expected in message
    assert "\n" not in message
    assert KEY not in message


def test_credit_errors_name_the_key_variable() -> None:
    body = error_body("billing_error", "payment required")
    assert "ANTHROPIC_API_KEY" in failure(Endpoint(status=402, body=body))


def test_error_text_is_redacted() -> None:
    body = error_body("invalid_request_error", f"bad header x-api-key: {KEY}")
    message = failure(Endpoint(status=400, body=body))
    assert KEY not in message
    assert "[redacted]" in message


def test_timeout_and_connection_errors() -> None:
    timed_out = failure(Endpoint(fail=httpx2.ReadTimeout("read timed out")))
    assert "no complete reply in time" in timed_out and "raise --timeout" in timed_out
    refused = failure(Endpoint(fail=httpx2.ConnectError("connection refused")))
    assert "cannot connect" in refused
    assert "--base-url" in refused


def test_status_errors_keep_the_sdk_error_as_cause() -> None:
    endpoint = Endpoint(status=401, body=error_body("authentication_error", "invalid x-api-key"))
    with pytest.raises(ProviderError) as info:
        call(make_provider(endpoint))
    assert type(info.value.__cause__).__name__ == "AuthenticationError"


def test_the_key_never_reaches_logs_errors_or_replies(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = Endpoint()
    provider = make_provider(endpoint)
    reply = call(provider)
    with pytest.raises(ProviderError) as info:
        call(make_provider(Endpoint(status=401, body=error_body("authentication_error", "no"))))
    # It was sent, to the API only.
    assert endpoint.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in caplog.text
    assert KEY not in reply.model_dump_json()
    assert KEY not in str(info.value)
    assert all(KEY not in str(v) for k, v in vars(provider).items() if k != "_client")
