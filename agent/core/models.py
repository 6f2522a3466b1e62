"""The model capability table (`prompts/models/capabilities.yaml`): how to ask a model, its price.

Providers read the request shape from here (the token-limit parameter,
whether `temperature` is accepted, reasoning effort, context and output
limits) and `agent.core.cost` reads the prices, so no model name is special-cased
in code. The table's `run_defaults` are the one home of each provider kind's
defaults (reply limit, context window, concurrency, billing, review policy),
read through `run_defaults`. Imports agent.core.errors only.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.core.errors import ConfigError

Vendor = Literal["openai", "anthropic"]

# OpenAI dates its snapshots -YYYY-MM-DD, Anthropic -YYYYMMDD: same family, same price.
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0, description="a prompt-cache read")
    cache_write: float = Field(ge=0, description="writing the prompt cache")
    output: float = Field(ge=0)
    batch_discount: float = Field(default=0.0, ge=0, lt=1)


class ModelFamily(BaseModel):
    """One row of the table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    provider: Vendor
    aliases: tuple[str, ...] = ()
    match: str | None = Field(default=None, description="a regex over the whole model id")
    token_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    temperature: bool = True
    reasoning_effort: tuple[str, ...] = ()
    default_reasoning_effort: str | None = None
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    price: Price | None = None
    price_source: str | None = None
    price_date: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelFamily:
        if self.price is not None and not (self.price_source and self.price_date):
            raise ValueError(f"{self.id}: a price needs price_source and price_date")
        if self.match is not None:
            re.compile(self.match)
        effort = self.default_reasoning_effort
        if effort is not None and effort not in self.reasoning_effort:
            raise ValueError(f"{self.id}: default_reasoning_effort {effort!r} is not offered")
        return self


# The provider kinds with defaults of their own; any other provider name reads `other`.
ProviderKind = Literal["openai", "anthropic", "local", "fake", "other"]


class RunDefaults(BaseModel):
    """What a run uses with one kind of provider when no flag, tidsmith.toml or model row says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(gt=0, description="the reply limit")
    max_concurrency: int = Field(gt=0, description="requests the endpoint serves at once")
    context_window: int | None = Field(
        default=None, gt=0, description="for a model the table does not know; None: the model's own"
    )
    billed: bool = Field(default=True, description="false: it runs on this machine, calls cost 0")
    review: Literal["llm", "lint"] = Field(default="llm", description="what `--review auto` means")
    max_revisions: int = Field(default=1, ge=0, description="revision rounds when not set")
    draft_as: Literal["json", "markdown"] = Field(
        default="json", description="what `--draft-as auto` means"
    )
    batch_api: bool = Field(
        default=False, description="the vendor has a batch API (--provider-batch)"
    )

    @property
    def window(self) -> int:
        """`context_window`, for the kinds that have one (all but local)."""
        if self.context_window is None:
            raise ConfigError("the model table's run_defaults give this provider no context_window")
        return self.context_window


class ModelTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    defaults: dict[Vendor, str]
    run_defaults: dict[ProviderKind, RunDefaults]
    request_max_tokens: int = Field(gt=0)
    review_max_tokens: int = Field(gt=0)
    families: tuple[ModelFamily, ...]


@cache
def model_table() -> ModelTable:
    path = Path(str(resources.files("prompts"))) / "models" / "capabilities.yaml"
    try:
        return ModelTable.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"model table {path} is broken: {str(e).splitlines()[0]}") from None


def capabilities(vendor: str, model: str) -> ModelFamily | None:
    """The family a hosted model id belongs to, or None for a model the table does not know."""
    rows = [f for f in model_table().families if f.provider == vendor]
    for name in (model, _DATED.sub("", model)):
        for family in rows:
            if family.match is None and (name == family.id or name in family.aliases):
                return family
    for family in rows:
        if family.match is not None and re.fullmatch(family.match, model):
            return family
    return None


def default_model(vendor: Vendor) -> str:
    return model_table().defaults[vendor]


def run_defaults(kind: str) -> RunDefaults:
    """The defaults of a provider kind (`Provider.name`); a name the table lacks reads `other`."""
    table = model_table().run_defaults
    known = cast(ProviderKind, kind) if kind in table else "other"
    return table[known]


def review_max_tokens() -> int:
    """The reply limit of one review call (checklist verdicts), whatever the draft's limit."""
    return model_table().review_max_tokens


def request_max_tokens() -> int:
    """The reply limit of a Request built without one (library use, tests)."""
    return model_table().request_max_tokens
