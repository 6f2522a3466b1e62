"""Where research evidence comes from: the TDD's linked PRDs and ADRs, local docs, a codebase,
MCP servers and LangChain retrievers.

Each source turns queries into passages (`research.base.Source`); it makes no
model calls. Planning the queries and condensing passages into cited notes is
the agent's research stage (`agent.notes`), which is the only caller.

research imports only agent.core (import-linter forbids agent.providers, and
the layers every other part of agent); the agent imports research, never the
other way round.

    sources = build_sources(tdd, ResearchConfig(docs=[Path("docs")]), cache_dir=run_dir)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.tdd import Tdd
from research.base import (
    McpServer,
    Note,
    Passage,
    Query,
    ResearchConfig,
    ResearchResult,
    Source,
    SourceRef,
)
from research.codebase import CodebaseSource
from research.related import RelatedSource, project_root

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

__all__ = [
    "McpServer",
    "Note",
    "Passage",
    "Query",
    "ResearchConfig",
    "ResearchResult",
    "Source",
    "SourceRef",
    "build_sources",
]


def build_sources(
    tdd: Tdd,
    config: ResearchConfig,
    retrievers: Sequence[BaseRetriever] = (),
    *,
    cache_dir: Path | None = None,
) -> list[Source]:
    """The sources the config names, in a fixed order. Nothing is read or started yet.

    `cache_dir` holds the docs index (`<cache_dir>/docs-index/`); without it the
    index goes to the user cache (`~/.cache/tidsmith/docs-index`).
    """
    # The docs, MCP and LangChain source modules are imported only when configured:
    # bm25s, the MCP client and LangChain cost start-up time a run without them should
    # not pay. The codebase and related-document sources are cheap and imported above.
    sources: list[Source] = []
    if config.codebase is not None:
        sources.append(CodebaseSource(config.codebase))
    if config.related:
        # A linked file is read only inside the project or a folder the user named.
        roots = [config.project_root or project_root(Path(tdd.path)), *config.docs]
        if config.codebase is not None:
            roots.append(config.codebase)
        sources.append(RelatedSource(tdd, roots))
    if config.docs:
        # Lazy: the docs index imports bm25s and numpy (~0.15 s) at module level.
        from research.docs import DocsSource

        index_dir = cache_dir / "docs-index" if cache_dir is not None else None
        sources.append(DocsSource(list(config.docs), index_dir))
    if config.mcp:
        # Lazy: the MCP client (mcp, httpx, anyio) takes ~0.7 s to import.
        from research.mcp import McpSource

        sources.extend(McpSource(server) for server in config.mcp)
    if retrievers:
        # Lazy: langchain-core takes ~0.8 s to import; only library callers pass retrievers.
        from research.langchain import LangChainSource

        sources.extend(LangChainSource(r) for r in retrievers)
    return sources
