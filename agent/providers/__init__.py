"""`provider:model` ids → providers. SDK modules are imported only here, lazily.

Ids: `openai:MODEL` (with a base URL: any OpenAI-compatible server),
`anthropic:MODEL`, `local` / `local:NAME` / `local:PATH.gguf` (embedded, no
network), `fake` (tests). A LangChain chat model is passed as an object
through the library API instead of an id.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from agent.errors import ConfigError, ProviderError
from agent.providers.base import Provider, Reply, Request, schema_budget

DEFAULT_OPENAI = "gpt-4.1-mini"
DEFAULT_ANTHROPIC = "claude-sonnet-4-6"
ID_FORMS = "openai:MODEL, anthropic:MODEL, local, local:smollm2|qwen-0.5b|qwen-1.5b|FILE.gguf, fake"


def default_model_id(env: dict[str, str] | None = None) -> str:
    """An OpenAI key selects OpenAI, else an Anthropic key Anthropic, else `local`."""
    env = dict(os.environ) if env is None else env
    if env.get("OPENAI_API_KEY"):
        return f"openai:{DEFAULT_OPENAI}"
    if env.get("ANTHROPIC_API_KEY"):
        return f"anthropic:{DEFAULT_ANTHROPIC}"
    return "local"


def parse_model_id(model_id: str) -> tuple[str, str]:
    provider, _, name = model_id.partition(":")
    provider = provider.strip().lower()
    if provider not in {"openai", "anthropic", "local", "fake"}:
        raise ConfigError(f"unknown model id {model_id!r}: use one of {ID_FORMS}")
    if provider in {"openai", "anthropic"} and not name:
        raise ConfigError(f"model id {model_id!r} needs a model name, e.g. {provider}:NAME")
    return provider, name


class LocalProvider:
    """The embedded model: a llama.cpp server we started, spoken to over HTTP."""

    name = "local"
    schema_in_text = False
    # One CPU-bound server: parallel requests would only queue there.
    max_concurrency = 1
    # ~10-25 tokens/s on a laptop CPU: 1000 tokens is about a minute a section.
    default_max_tokens = 1000

    def __init__(self, server: Any, inner: Provider) -> None:
        self._server = server
        self._inner = inner
        self.model = str(server.model_name)
        self.context_window = int(server.context_window)

    def schema_budget(self, max_tokens: int) -> int | None:
        return schema_budget(self._inner, max_tokens)

    async def complete(self, request: Request) -> Reply:
        try:
            return await self._inner.complete(request)
        except ProviderError:
            # A dead server explains a failed request better than the HTTP error.
            self._server.check_alive()
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            await self._server.aclose()


async def open_provider(
    model_id: str | None,
    *,
    base_url: str | None = None,
    timeout: float = 600.0,  # noqa: ASYNC109 (passed to the SDK client, per call)
    env: dict[str, str] | None = None,
    replay: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Provider:
    """Build the provider for a model id; the caller must `aclose()` it.

    With `replay`, answers come from a cassette: no key is needed, no local
    server starts, and nothing is retried (a miss is final).
    """
    env = dict(os.environ) if env is None else env
    retries = 0 if replay else 2
    model_id = model_id or default_model_id(env)
    provider, name = parse_model_id(model_id)
    if provider == "fake":
        from agent.providers.fake import FakeProvider

        return FakeProvider(model=name or "fake")
    if provider == "openai":
        base_url = base_url or env.get("OPENAI_BASE_URL") or None
        key = env.get("OPENAI_API_KEY")
        if not key and base_url is None and not replay:
            raise ConfigError(
                f"{model_id} needs OPENAI_API_KEY set (or --base-url for a compatible server)"
            )
        from agent.providers.openai import OpenAIProvider

        # Compatible servers often need no key; the SDK insists on a non-empty one.
        return OpenAIProvider(name, api_key=key or "unused", base_url=base_url, timeout=timeout)
    if provider == "anthropic":
        base_url = base_url or env.get("ANTHROPIC_BASE_URL") or None
        key = env.get("ANTHROPIC_API_KEY")
        if not key and base_url is None and not replay:
            raise ConfigError(f"{model_id} needs ANTHROPIC_API_KEY set")
        from agent.providers.anthropic import AnthropicProvider

        return AnthropicProvider(
            name,
            api_key=key or "unused",
            base_url=base_url,
            # Compatible servers (llama.cpp) ignore structured output: schema in text.
            structured="native" if base_url is None else "json_in_text",
            timeout=timeout,
            max_retries=retries,
        )
    from agent.providers.openai import OpenAIProvider

    if replay:
        from agent.providers.local import replay_identity

        alias, window = replay_identity(name or "local")
        # The recorded requests went to a server on a port that no longer
        # exists; the cassette answers them, matched on path and body.
        return OpenAIProvider(
            alias,
            api_key="local",
            base_url="http://127.0.0.1:9/v1",
            structured="grammar",
            max_concurrency=1,
            context_window=window,
            timeout=timeout,
            max_retries=0,
            name="local",
        )
    from agent.providers.local import LocalServer

    server = await LocalServer.start(name or "qwen-1.5b", progress=progress)
    inner = OpenAIProvider(
        server.model_name,
        api_key="local",
        base_url=server.base_url,
        structured="grammar",
        max_concurrency=1,
        context_window=server.context_window,
        timeout=timeout,
        # A local server that stops answering has crashed; retrying hides it.
        max_retries=0,
        name="local",
    )
    return LocalProvider(server, inner)
