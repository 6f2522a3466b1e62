"""What several commands share: settings and research config from their flags,
`--json` on stdout, table width, and running a coroutine.

Imported at `--help` time (through the parser), so it imports the settings,
research and asyncio only inside the functions that need them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.core.errors import ConfigError

if TYPE_CHECKING:
    from agent.core.settings import Settings
    from research import ResearchConfig

T = TypeVar("T")

# The flags that are settings; a command without one of them leaves it to the
# environment and tidsmith.toml.
SETTING_FLAGS = (
    "model",
    "template",
    "concurrency",
    "max_tokens",
    "timeout",
    "base_url",
    "review",
    "max_revisions",
    "structured",
    "draft_as",
    "reasoning_effort",
)


def settings_from(args: argparse.Namespace) -> Settings:
    """The command's settings: its flags, then the environment, tidsmith.toml, defaults."""
    # Lazy: settings load pydantic, which `--help` does without.
    from agent.core.settings import load_settings

    return load_settings({name: getattr(args, name, None) for name in SETTING_FLAGS})


def research_from(args: argparse.Namespace) -> ResearchConfig | None:
    """The research config the flags ask for (plus tidsmith.toml's sources), or None."""
    if not (args.research or args.docs or args.codebase or args.strict_research):
        if getattr(args, "project_root", None) is not None:
            raise ConfigError("--project-root is for research; add --research")
        return None
    # Lazy: the research config loads pydantic, which `--help` does without.
    from research.config import load_research_config

    return load_research_config(
        docs=args.docs,
        codebase=args.codebase,
        strict=args.strict_research or None,
        project_root=args.project_root,
        trust=args.trust_config,
    )


def json_to_stdout(value: object) -> bool:
    """True when `--json` asks for JSON on stdout (a bare flag, or `-`)."""
    return value is True or (isinstance(value, Path) and str(value) == "-")


def table_width() -> int | None:
    """Rich's own width on a terminal; logs and CI pipes get room for a findings table."""
    return None if sys.stdout.isatty() else 120


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine to the end, on a new event loop."""
    # Lazy: asyncio costs `--help` about 45 ms.
    import asyncio

    return asyncio.run(coroutine)
