"""LangChainProvider over langchain-core's own fake chat models: text, roles, usage, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatResult
from pydantic import Field

from agent.core.errors import ProviderError
from agent.providers.base import Message, Provider, Reply, Request
from agent.providers.langchain import LangChainProvider

ANSWER = '{"summary": "Export invoices to S3.", "steps": ["read", "write"]}'


class RecordingChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that keeps the messages each call received."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


class BrokenChatModel(GenericFakeChatModel):
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise RuntimeError("upstream said no\nAuthorization: Bearer sk-live-0123456789abcdef")


def make_request(messages: list[Message] | None = None) -> Request:
    return Request(
        prompt_id="draft_section",
        prompt_version="3",
        label="key_algorithms",
        messages=messages
        or [
            Message(role="system", content="You write TIDs. The TDD: ..."),
            Message(role="user", content="Write the section. Schema: {...}"),
        ],
        schema_name="Section",
        json_schema={"type": "object"},
    )


def call(provider: LangChainProvider, request: Request | None = None) -> Reply:
    async def go() -> Reply:
        try:
            return await provider.complete(request or make_request())
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_is_a_provider_that_puts_the_schema_in_text() -> None:
    provider = LangChainProvider(FakeListChatModel(responses=[ANSWER]))
    assert isinstance(provider, Provider)
    assert provider.name == "langchain"
    assert provider.schema_in_text is True
    assert provider.context_window == 32_000
    assert provider.model == "fake-list-chat-model"  # the chat model's _llm_type


def test_model_name_prefers_the_integrations_model_id() -> None:
    class Named(FakeListChatModel):
        model_name: str = "acme-chat-7b"

    assert LangChainProvider(Named(responses=[ANSWER])).model == "acme-chat-7b"
    explicit = LangChainProvider(FakeListChatModel(responses=[ANSWER]), model="mine")
    assert explicit.model == "mine"
    assert explicit.label == "langchain:mine"


def test_text_round_trip() -> None:
    reply = call(LangChainProvider(FakeListChatModel(responses=[ANSWER])))
    assert reply.text == ANSWER
    assert reply.finish_reason == "stop"
    assert reply.refusal is None
    assert reply.model == "fake-list-chat-model"


def test_roles_map_to_langchain_messages() -> None:
    chat = RecordingChatModel(messages=iter([ANSWER]))
    messages = [
        Message(role="system", content="sys"),
        Message(role="user", content="draft"),
        Message(role="assistant", content="{bad"),
        Message(role="user", content="fix it"),
    ]
    call(LangChainProvider(chat), make_request(messages))
    (seen,) = chat.seen
    assert [type(m) for m in seen] == [SystemMessage, HumanMessage, AIMessage, HumanMessage]
    assert [m.content for m in seen] == ["sys", "draft", "{bad", "fix it"]


def test_usage_and_metadata_when_the_model_reports_them() -> None:
    answer = AIMessage(
        content=ANSWER,
        usage_metadata={
            "input_tokens": 1200,
            "output_tokens": 80,
            "total_tokens": 1280,
            "input_token_details": {"cache_read": 1000},
        },
        response_metadata={"finish_reason": "length", "model_name": "acme-chat-7b-0601"},
    )
    reply = call(LangChainProvider(GenericFakeChatModel(messages=iter([answer]))))
    assert reply.usage is not None
    assert reply.usage.input_tokens == 1200
    assert reply.usage.output_tokens == 80
    assert reply.usage.cached_tokens == 1000
    assert reply.finish_reason == "length"
    assert reply.model == "acme-chat-7b-0601"


def test_no_usage_reported_means_unknown_usage() -> None:
    reply = call(LangChainProvider(GenericFakeChatModel(messages=iter([ANSWER]))))
    # Unknown, not zero: a run's cost is then "unknown" and --max-cost stops on it.
    assert reply.usage is None


def test_content_blocks_become_text() -> None:
    answer = AIMessage(
        content=[{"type": "text", "text": '{"a": '}, {"type": "text", "text": "1}"}],
        response_metadata={"stop_reason": "max_tokens"},
    )
    reply = call(LangChainProvider(GenericFakeChatModel(messages=iter([answer]))))
    assert reply.text == '{"a": 1}'
    assert reply.finish_reason == "length"


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        (AIMessage(content="", additional_kwargs={"refusal": "I can't help."}), "I can't help."),
        (
            AIMessage(content="Not this one.", response_metadata={"stop_reason": "refusal"}),
            "Not this one.",
        ),
    ],
)
def test_refusals(answer: AIMessage, refusal: str) -> None:
    reply = call(LangChainProvider(GenericFakeChatModel(messages=iter([answer]))))
    assert reply.refusal == refusal


def test_model_failure_is_a_one_line_redacted_provider_error() -> None:
    provider = LangChainProvider(BrokenChatModel(messages=iter([])))
    with pytest.raises(ProviderError) as info:
        call(provider)
    message = str(info.value)
    assert message.startswith("langchain:generic-fake-chat-model, section 'key_algorithms': ")
    assert "RuntimeError: upstream said no" in message
    assert "sk-live-0123456789abcdef" not in message
    assert "\n" not in message
    assert isinstance(info.value.__cause__, RuntimeError)
