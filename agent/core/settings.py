"""One Settings object: flags > environment > tidsmith.toml > defaults.

API keys are not settings: providers read them from the environment when
they are built, so they are never copied into this object, logs or records.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.errors import ConfigError
from agent.core.files import read_text
from agent.core.write import write_json_atomic

CONFIG_FILE = "tidsmith.toml"


def user_cache_dir() -> Path:
    """$TIDSMITH_CACHE_DIR, else $XDG_CACHE_HOME/tidsmith, else ~/.cache/tidsmith.

    Models, the llama-server build, token encodings, research indexes and
    checkpoints all live under it, so one variable moves them all.
    """
    configured = os.environ.get("TIDSMITH_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    user_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(user_cache) / "tidsmith"


# Environment variable → setting.
_ENV = {
    "TIDSMITH_MODEL": "model",
    "TIDSMITH_TEMPLATE": "template",
    "TIDSMITH_CONCURRENCY": "concurrency",
    "TIDSMITH_MAX_TOKENS": "max_tokens",
    "TIDSMITH_TIMEOUT": "timeout",
    "TIDSMITH_REVIEW": "review",
    "TIDSMITH_STRUCTURED": "structured",
    "TIDSMITH_DRAFT_AS": "draft_as",
    "TIDSMITH_REASONING_EFFORT": "reasoning_effort",
}


class Settings(BaseModel):
    """What a run uses, whichever place each value came from."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="provider:model id; None picks by keys")
    template: str = "tid"
    concurrency: int = Field(default=4, ge=1, le=64)
    max_tokens: int | None = Field(
        default=None, ge=64, le=32_000, description="per section call; None: the provider's default"
    )
    timeout: float = Field(default=600.0, gt=0)
    base_url: str | None = None
    structured: Literal[
        "auto", "native", "json-schema", "grammar", "json-object", "schema-in-prompt"
    ] = Field(
        default="auto",
        description="how the model is asked for JSON; auto: the API's native structured "
        "output, falling back where a server says it cannot (docs/providers.md)",
    )
    draft_as: Literal["auto", "json", "markdown"] = Field(
        default="auto",
        description="how each section is asked for: a JSON object, or markdown under its "
        "sub-headings that code reads into the same fields; auto: markdown on the embedded "
        "model, JSON elsewhere (docs/embedded.md)",
    )
    reasoning_effort: str | None = Field(
        default=None,
        description="openai reasoning models: the effort to spend "
        "(prompts/models/capabilities.yaml lists "
        "what each model takes); None: the model's default",
    )
    review: Literal["auto", "llm", "lint", "off"] = Field(
        default="auto",
        description="llm: lints + the model judges the checklist; lint: lints only; "
        "auto: llm, except lint on embedded models (a small model's verdicts are noise)",
    )
    max_revisions: int | None = Field(
        default=None,
        ge=0,
        le=3,
        description="rounds re-drafting failing sections; None: 1, but 0 on embedded models",
    )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(read_text(path, 1024 * 1024, "TOML settings file", remember=True))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None


def _trust_file() -> Path:
    return user_cache_dir() / "trusted-configs.json"


def config_trusted(path: Path) -> bool:
    """Whether the user allowed this tidsmith.toml, as it is now, to start its MCP commands."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        trusted = json.loads(_trust_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(trusted, dict) and trusted.get(str(path.resolve())) == digest


def trust_config(path: Path) -> None:
    """Remember that the user allowed this tidsmith.toml (by its sha256: an edit asks again)."""
    try:
        trusted = json.loads(_trust_file().read_text(encoding="utf-8"))
        if not isinstance(trusted, dict):
            trusted = {}
    except (OSError, ValueError):
        trusted = {}
    trusted[str(path.resolve())] = hashlib.sha256(path.read_bytes()).hexdigest()
    write_json_atomic(_trust_file(), trusted, force=True)


def consent_to_commands(path: Path, commands: list[str], trust: bool) -> None:
    """Run a checkout's MCP commands only with the user's consent, asked once per file version.

    A tidsmith.toml arrives with whatever folder tidsmith runs in: an untrusted
    checkout must not be able to run its code through `--research`.
    """
    if trust or config_trusted(path):
        return
    shown = "; ".join(commands)
    if sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write(
            f"{path} asks to start these MCP servers for research: {shown}\n"
            "Allow this file to run them (remembered until it changes)? [y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in {"y", "yes"}:
            trust_config(path)
            return
    raise ConfigError(
        f"{path} names MCP commands ({shown[:120]}); they run only with your consent: "
        "rerun in a terminal to allow this file, or pass --trust-config"
    )


def first_error(e: ValidationError) -> str:
    """`field: message` of the first problem: one line a user can act on."""
    first = e.errors()[0]
    return ".".join(str(x) for x in first["loc"]) + f": {first['msg']}"


def load_settings(
    flags: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Merge the layers; a bad value is a ConfigError naming where it came from."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    path = config_path or Path.cwd() / CONFIG_FILE
    if path.is_file():
        data = read_toml(path)
        section = data.get("tidsmith", data)
        unknown = set(section) - set(Settings.model_fields) - {"research"}
        if unknown:
            raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
        values.update({k: v for k, v in section.items() if k in Settings.model_fields})
    for var, field in _ENV.items():
        if env.get(var):
            values[field] = env[var]
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as e:
        raise ConfigError(f"setting {first_error(e)}") from None
