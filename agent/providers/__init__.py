"""`provider:model` ids → providers. SDK modules are imported only here, lazily.

Ids: `openai:MODEL` (with a base URL: any OpenAI-compatible server),
`anthropic:MODEL`, `local` / `local:NAME` / `local:PATH.gguf` (embedded, no
network), `fake` (tests). A LangChain chat model is passed as an object
through the library API instead of an id. Defaults per provider kind are read
from the model table (`agent.core.models.run_defaults`). Imports agent.core and the
provider modules beside it only; the vendor SDKs and the embedded model's catalog
load lazily, when a provider of their kind is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from agent.core.errors import ConfigError, ProviderError
from agent.core.models import default_model, run_defaults
from agent.core.settings import Settings
from agent.providers.base import (
    STRUCTURED_MODES,
    Provider,
    Reply,
    Request,
    StructuredMode,
    schema_budget,
)
from agent.providers.fake import FakeProvider

# Current models of each vendor, from prompts/models/capabilities.yaml.
DEFAULT_OPENAI = default_model("openai")
DEFAULT_ANTHROPIC = default_model("anthropic")
# Defaults per provider kind come from the table's `run_defaults`. `--concurrency` is
# honoured up to the settings' documented maximum; a hosted API imposes its own rate
# limits, which the retries respect.
HOSTED_MAX_CONCURRENCY = run_defaults("openai").max_concurrency
# Reply limit when neither a flag nor tidsmith.toml sets one (hosted models and any
# provider that names none); LocalProvider sets its own.
DEFAULT_MAX_TOKENS = run_defaults("openai").max_tokens
_LOCAL = run_defaults("local")
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
    # One slot: a second would evaluate the shared TDD prefix again (docs/embedded.md).
    max_concurrency = _LOCAL.max_concurrency
    # ~10-25 tokens/s on a laptop CPU: a shorter reply limit than a hosted model's.
    default_max_tokens = _LOCAL.max_tokens

    def __init__(self, server: Any, inner: Provider) -> None:
        self._server = server
        self._inner = inner
        self.model = str(server.model_name)
        self.context_window = int(server.context_window)

    def schema_budget(self, max_tokens: int) -> int | None:
        return schema_budget(self._inner, max_tokens)

    @property
    def schema_in_text(self) -> bool:
        return self._inner.schema_in_text

    def room(self, request: Request, reply: Reply) -> int:
        used = reply.usage.input_tokens if reply.usage is not None else 0
        return max(0, self.context_window - used)

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


@dataclass(frozen=True)
class ProviderOptions:
    """What `open_provider` was asked for, checked: one builder per provider kind reads it."""

    model_id: str
    kind: str
    name: str
    env: dict[str, str]
    base_url: str | None
    timeout: float
    replay: bool
    progress: Callable[[str], None] | None
    structured: str
    reasoning_effort: str | None

    @property
    def fallback(self) -> bool:
        """`--structured auto` (not replaying) falls back when a server refuses a mode."""
        return self.structured == "auto" and not self.replay

    @property
    def mode(self) -> StructuredMode:
        return cast(StructuredMode, "native" if self.structured == "auto" else self.structured)

    @property
    def max_retries(self) -> int:
        return 0 if self.replay else 2


async def open_configured(
    settings: Settings,
    *,
    replay: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Provider:
    """`open_provider` with what the settings say: model, base URL, timeout, structured mode."""
    return await open_provider(
        settings.model,
        base_url=settings.base_url,
        timeout=settings.timeout,
        replay=replay,
        progress=progress,
        structured=settings.structured,
        reasoning_effort=settings.reasoning_effort,
    )


async def open_provider(
    model_id: str | None,
    *,
    base_url: str | None = None,
    timeout: float = 600.0,  # noqa: ASYNC109 (passed to the SDK client, per call)
    env: dict[str, str] | None = None,
    replay: bool = False,
    progress: Callable[[str], None] | None = None,
    structured: str = "auto",
    reasoning_effort: str | None = None,
) -> Provider:
    """Build the provider for a model id; the caller must `aclose()` it.

    With `replay`, answers come from a cassette: no key is needed, no local
    server starts, and nothing is retried (a miss is final). `structured` is
    `auto` or one of STRUCTURED_MODES: `auto` asks for the API's native
    structured output and, when a server says it cannot do that, falls back
    (OpenAI protocol: JSON mode, then the schema in the prompt; Anthropic: the
    schema in the prompt). The embedded model uses its grammar.
    """
    env = dict(os.environ) if env is None else env
    model_id = model_id or default_model_id(env)
    kind, name = parse_model_id(model_id)
    if structured != "auto" and structured not in STRUCTURED_MODES:
        raise ConfigError(
            f"--structured {structured!r} is not a mode; use auto, " + ", ".join(STRUCTURED_MODES)
        )
    if reasoning_effort is not None and kind != "openai":
        raise ConfigError(f"--reasoning-effort applies to openai: models, not {model_id}")
    options = ProviderOptions(
        model_id, kind, name, env, base_url, timeout, replay, progress, structured, reasoning_effort
    )
    if kind == "fake":
        return _open_fake(options)
    if kind == "openai":
        return _open_openai(options)
    if kind == "anthropic":
        return _open_anthropic(options)
    return await _open_local(options)


def _open_fake(options: ProviderOptions) -> Provider:
    # A slowed fake lets tests of front ends (MCP, cancellation) catch a run mid-way.
    delay = float(options.env.get("TIDSMITH_FAKE_DELAY") or 0)
    return FakeProvider(model=options.name or "fake", delay=delay)


def _open_openai(options: ProviderOptions) -> Provider:
    env = options.env
    base_url = options.base_url or env.get("OPENAI_BASE_URL") or None
    key = env.get("OPENAI_API_KEY")
    if not key and base_url is None and not options.replay:
        raise ConfigError(
            f"{options.model_id} needs OPENAI_API_KEY set (or --base-url for a compatible server)"
        )
    # Lazy: the model catalog (its output rates) loads only here and for local runs.
    from agent.providers.local import chars_per_token

    # Lazy: the openai SDK loads only when an openai: model is opened (fast --help).
    from agent.providers.openai import OpenAIProvider

    # A compatible server serving one of tidsmith's embedded models under its
    # catalog name (`openai:qwen-1.5b`) gets that model's output rate, as `local`
    # does; any other name the cautious default. Spelt `local:NAME` so NAME is
    # looked up as it is (a bare `local` would mean the default model).
    rate = chars_per_token(f"local:{options.name}")
    # Compatible servers often need no key; the SDK insists on a non-empty one.
    return OpenAIProvider(
        options.name,
        api_key=key or "unused",
        base_url=base_url,
        structured=options.mode,
        fallback=options.fallback,
        reasoning_effort=options.reasoning_effort,
        max_concurrency=HOSTED_MAX_CONCURRENCY,
        timeout=options.timeout,
        max_retries=options.max_retries,
        chars_per_token=rate,
    )


def _open_anthropic(options: ProviderOptions) -> Provider:
    env = options.env
    base_url = options.base_url or env.get("ANTHROPIC_BASE_URL") or None
    key = env.get("ANTHROPIC_API_KEY")
    if not key and base_url is None and not options.replay:
        raise ConfigError(f"{options.model_id} needs ANTHROPIC_API_KEY set")
    # Lazy: the anthropic SDK loads only when an anthropic: model is opened (fast --help).
    from agent.providers.anthropic import AnthropicProvider

    return AnthropicProvider(
        options.name,
        api_key=key or "unused",
        base_url=base_url,
        structured=options.mode,
        fallback=options.fallback,
        max_concurrency=HOSTED_MAX_CONCURRENCY,
        timeout=options.timeout,
        max_retries=options.max_retries,
    )


async def _open_local(options: ProviderOptions) -> Provider:
    # The embedded server takes a grammar; json-object is the other mode it has.
    mode: StructuredMode = "grammar" if options.structured == "auto" else options.mode
    if mode not in ("grammar", "json-object"):
        raise ConfigError(
            f"--structured {options.structured} is not available on the embedded model; "
            "use grammar or json-object"
        )
    # Lazy: the model catalog and server (httpx) load only for the embedded model (fast --help).
    from agent.providers.local import LocalServer, chars_per_token, replay_identity

    # Lazy: the openai SDK, spoken to the llama.cpp server, loads only here (fast --help).
    from agent.providers.openai import OpenAIProvider

    if options.replay:
        alias, window = replay_identity(options.name or "local")
        # The recorded requests went to a server on a port that no longer
        # exists; the cassette answers them, matched on path and body.
        return OpenAIProvider(
            alias,
            api_key="local",
            base_url="http://127.0.0.1:9/v1",
            structured=mode,
            max_concurrency=_LOCAL.max_concurrency,
            context_window=window,
            timeout=options.timeout,
            max_retries=0,
            name="local",
            chars_per_token=chars_per_token(options.name or "local"),
        )
    server = await LocalServer.start(options.name or "qwen-1.5b", progress=options.progress)
    return serve_local(server, structured=mode, timeout=options.timeout)


def serve_local(
    server: Any, *, structured: StructuredMode = "grammar", timeout: float = 600.0
) -> LocalProvider:
    """The provider for a started embedded server: the OpenAI protocol, one request at a time."""
    # Lazy: the model catalog loads only for the embedded model (fast --help).
    from agent.providers.local import chars_per_token

    # Lazy: the openai SDK, spoken to the llama.cpp server, loads only here (fast --help).
    from agent.providers.openai import OpenAIProvider

    inner = OpenAIProvider(
        server.model_name,
        api_key="local",
        base_url=server.base_url,
        structured=structured,
        max_concurrency=_LOCAL.max_concurrency,
        context_window=server.context_window,
        timeout=timeout,
        # A local server that stops answering has crashed; retrying hides it.
        max_retries=0,
        name="local",
        chars_per_token=chars_per_token(server.model_name),
    )
    return LocalProvider(server, inner)


def provider_default_max_tokens(provider: Provider) -> int:
    """A provider may ask for a smaller reply limit (CPU models: shorter, faster drafts).

    Optional for providers (each of ours sets it from the table's `run_defaults`; a
    library user's may not), so it is read with getattr rather than required.
    """
    return int(getattr(provider, "default_max_tokens", DEFAULT_MAX_TOKENS))


def default_max_tokens(model_id: str | None) -> int:
    """The reply limit a run on `model_id` uses unless told otherwise (no provider opened)."""
    kind, _ = parse_model_id(model_id or default_model_id())
    return run_defaults(kind).max_tokens


class ProviderShape:
    """What plan_messages needs to know about a provider, for a dry run that opens none."""

    def __init__(self, model_id: str | None) -> None:
        kind, name = parse_model_id(model_id or default_model_id())
        defaults = run_defaults(kind)
        self.name = kind
        self.model = name or kind
        self.schema_in_text = False
        self.max_concurrency = defaults.max_concurrency
        self.default_max_tokens = defaults.max_tokens
        if defaults.context_window is not None:
            self.context_window = defaults.context_window
        else:
            # Lazy: the model catalog and GGUF reader load only for the embedded model.
            from agent.providers.local import replay_identity

            self.model, self.context_window = replay_identity(name or "local")

    async def complete(self, request: Request) -> Reply:
        raise AssertionError("a dry run makes no model calls")

    async def aclose(self) -> None:
        pass
