"""The research sources a run uses: flags, added to `[research]` in tidsmith.toml.

Imports only agent.core (settings, errors) and research.base; never agent.providers or the stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.core.errors import ConfigError
from agent.core.settings import CONFIG_FILE, consent_to_commands, first_error, read_toml
from research.base import ResearchConfig


def load_research_config(
    *,
    docs: list[Path] | None = None,
    codebase: Path | None = None,
    strict: bool | None = None,
    config_path: Path | None = None,
    project_root: Path | None = None,
    trust: bool = False,
) -> ResearchConfig:
    """Research sources: flags, added to `[research]` in tidsmith.toml.

    ```toml
    [research]
    docs = ["docs/"]
    [[research.mcp]]
    name = "ref"
    command = "npx"
    args = ["ref-tools-mcp"]
    tool = "ref_search_documentation"
    ```
    """
    path = config_path or Path.cwd() / CONFIG_FILE
    table: dict[str, Any] = {}
    if path.is_file():
        table = dict(read_toml(path).get("research", {}))
        # Relative folders in the file are relative to the file, not the cwd.
        table["docs"] = [path.parent / d for d in table.get("docs", [])]
        if table.get("codebase"):
            table["codebase"] = path.parent / table["codebase"]
    if project_root is not None:
        table["project_root"] = project_root
    if docs:
        table["docs"] = [*table.get("docs", []), *docs]
    if codebase is not None:
        table["codebase"] = codebase
    if strict is not None:
        table["strict"] = strict
    try:
        config = ResearchConfig.model_validate(table)
    except ValidationError as e:
        raise ConfigError(f"{path} [research] {first_error(e)}") from None
    if config.mcp:
        # Only the file names MCP servers, so they are the file's commands.
        consent_to_commands(path, [" ".join([m.command, *m.args]) for m in config.mcp], trust)
    return config
