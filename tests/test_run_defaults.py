"""The defaults per provider kind come from one home, the model table, with the values they had."""

from __future__ import annotations

from agent.core.cost import batch_cost, call_cost
from agent.core.models import request_max_tokens, run_defaults
from agent.core.records import Usage
from agent.providers import (
    DEFAULT_MAX_TOKENS,
    HOSTED_MAX_CONCURRENCY,
    LocalProvider,
    ProviderShape,
    default_max_tokens,
    provider_default_max_tokens,
)
from agent.providers.base import Message, Request
from agent.providers.fake import FakeProvider


def test_reply_limits() -> None:
    assert DEFAULT_MAX_TOKENS == 1800
    assert default_max_tokens("openai:gpt-5-mini") == 1800
    assert default_max_tokens("anthropic:claude-sonnet-4-6") == 1800
    assert default_max_tokens("fake") == 1800
    assert default_max_tokens("local") == 1600
    assert LocalProvider.default_max_tokens == 1600
    assert provider_default_max_tokens(FakeProvider()) == 1800
    request = Request(
        prompt_id="p",
        prompt_version="1",
        label="x",
        messages=[Message(role="user", content="hi")],
        schema_name="s",
        json_schema={"type": "object"},
    )
    assert request.max_tokens == request_max_tokens() == 1500


def test_windows_and_concurrency() -> None:
    assert HOSTED_MAX_CONCURRENCY == 64
    assert LocalProvider.max_concurrency == 1
    assert ProviderShape("openai:some-unknown-model").context_window == 128_000
    assert ProviderShape("anthropic:claude-sonnet-4-6").context_window == 200_000
    assert ProviderShape("fake").context_window == 128_000
    fake = FakeProvider()
    assert (fake.context_window, fake.max_concurrency) == (128_000, 8)
    other = run_defaults("langchain")
    assert (other.context_window, other.max_concurrency) == (32_000, 4)


def test_local_and_fake_are_not_billed() -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)
    for kind in ("local", "fake"):
        shape = ProviderShape(kind if kind == "fake" else "local:smollm2")
        assert call_cost(shape, usage) == 0.0
        assert batch_cost(shape, 1.0) == 1.0
    assert run_defaults("openai").billed and run_defaults("anthropic").billed


def test_review_policy_per_kind() -> None:
    assert (run_defaults("local").review, run_defaults("local").max_revisions) == ("lint", 0)
    for kind in ("openai", "anthropic", "fake", "langchain"):
        assert (run_defaults(kind).review, run_defaults(kind).max_revisions) == ("llm", 1)


def test_batch_api_per_kind() -> None:
    assert [
        k for k in ("openai", "anthropic", "local", "fake", "x") if run_defaults(k).batch_api
    ] == [
        "openai",
        "anthropic",
    ]


def test_help_texts_state_the_table_defaults() -> None:
    """`--help` is built without loading the table (start-up), so its numbers are checked here."""
    from agent.cli.parser import build_parser
    from agent.core.models import review_max_tokens

    parser = build_parser()
    helps = {
        name: " ".join(sub.format_help().split())
        for name, sub in parser._subparsers._group_actions[0].choices.items()  # pyright: ignore[reportOptionalMemberAccess, reportAttributeAccessIssue]
    }
    hosted, local = run_defaults("openai").max_tokens, run_defaults("local").max_tokens
    assert f"(default {hosted}; {local} on embedded models)" in helps["generate"]
    assert f"reply limit per review call (default {review_max_tokens()})" in helps["review"]


def test_review_and_revision_defaults_follow_the_table() -> None:
    from agent.pipeline.stages import resolve_review, resolve_revisions

    assert resolve_review("auto", FakeProvider()) == "llm"
    assert resolve_revisions(None, FakeProvider()) == 1
    embedded = FakeProvider()
    embedded.name = "local"
    assert resolve_review("auto", embedded) == "lint"
    assert resolve_revisions(None, embedded) == 0
    assert resolve_review("off", embedded) == "off"
    assert resolve_revisions(2, embedded) == 2


def test_sections_are_asked_as_markdown_on_the_embedded_model_only() -> None:
    from agent.pipeline.stages import resolve_draft_as

    embedded = FakeProvider()
    embedded.name = "local"
    assert resolve_draft_as("auto", embedded) == "markdown"
    assert resolve_draft_as("auto", FakeProvider()) == "json"
    assert resolve_draft_as("json", embedded) == "json"
    assert resolve_draft_as("markdown", FakeProvider()) == "markdown"
