"""The research stage's models, the Source protocol, and the lexical ranking sources share.

A source turns queries into passages. Every passage carries a `source_id`
that stays the same across runs (`prd:002_FPRD|Model_Management.md`,
`docs:guides/api.md#pagination`), so notes can cite it and a rerun can be
compared with the last one.

Imports only agent.core (never agent.providers, the stages or a front end).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agent.core.records import CallRecord
from agent.core.tdd import parse_headings, word_terms
from agent.core.tokens import count_tokens, truncate_tokens

if TYPE_CHECKING:
    import bm25s


class Passage(BaseModel):
    """One piece of text a source returned for a query."""

    source_id: str = Field(description="stable id of the document or result, cited by notes")
    kind: str = Field(description="the source kind: related, docs, codebase, mcp, langchain")
    title: str
    location: str = Field(description="where a reader finds it: a relative path#anchor, a URI")
    text: str
    path: str = Field(default="", description="the file's absolute path, for relative links")
    document: str = Field(default="", description="the whole document's title, if one")
    score: float = 0.0
    # Facts computed by code (pinned versions) become notes as they are, never
    # paraphrased by a model that might drop a digit.
    verbatim: bool = False


class Query(BaseModel):
    """A search query of the seed's shape, tagged with the template sections it serves."""

    text: str = Field(max_length=200)
    sections: list[str] = Field(default_factory=list, max_length=6)


class Note(BaseModel):
    """A research note the section prompts can cite as [R1], [R2], ..."""

    id: str
    text: str
    source_ids: list[str]
    by_code: bool = Field(default=False, description="built by code, not condensed by the model")


class SourceRef(BaseModel):
    """A cited source as the References appendix lists it."""

    id: str
    kind: str
    title: str
    location: str
    path: str = ""


class McpServer(BaseModel):
    """An MCP server to search, from `[[research.mcp]]` in tidsmith.toml."""

    # A misspelt key in tidsmith.toml is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60)
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    tool: str = Field(min_length=1, description="the tool to call once per query")
    query_arg: str = "query"
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=30.0, gt=0, description="seconds for start-up and per call")


class ResearchConfig(BaseModel):
    """Which sources a research run uses and how much it asks for."""

    model_config = ConfigDict(extra="forbid")

    related: bool = True
    project_root: Path | None = Field(
        default=None, description="where linked documents may be read; default: beside 0xcc/"
    )
    docs: list[Path] = Field(default_factory=list)
    codebase: Path | None = None
    mcp: list[McpServer] = Field(default_factory=list)
    strict: bool = False
    max_queries: int = Field(default=6, ge=1, le=12)
    per_query: int = Field(default=3, ge=1, le=10, description="passages kept per query per source")


class ResearchResult(BaseModel):
    """What research produced; saved so a rerun of the same TDD reuses it."""

    key: str
    queries: list[Query]
    notes: list[Note]
    sources: list[SourceRef]
    failures: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    calls: list[CallRecord] = Field(default_factory=list)
    reused: bool = False


@runtime_checkable
class Source(Protocol):
    """Anything that answers queries with passages."""

    name: str
    kind: str

    def fingerprint(self) -> str:
        """A string that changes when the source's content or version changes."""
        ...

    async def search(self, queries: list[Query], limit: int) -> list[Passage]:
        """Up to `limit` passages per query; raise RetrievalError when the source fails."""
        ...


# --- text helpers shared by the file-based sources -----------------------------

# In every seed-shaped query ("<technology> implementation patterns <technique>"),
# so they say nothing about which passage fits.
_QUERY_WORDS = frozenset({"implementation", "pattern"})


def terms(text: str) -> list[str]:
    """Lower-case word terms for BM25: the TDD excerpt's terms minus the seed's filler words."""
    return [t for t in word_terms(text) if t not in _QUERY_WORDS]


def slug(title: str) -> str:
    """A GitHub-style anchor for a heading: `1.2 Export Flow` -> `12-export-flow`."""
    kept = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return re.sub(r"\s+", "-", kept)


class Chunk(BaseModel):
    title: str
    anchor: str
    text: str


def _pieces(text: str, max_tokens: int) -> list[str]:
    """Paragraph-aligned pieces of at most `max_tokens` tokens each."""
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        cost = count_tokens(para)
        if cost > max_tokens:
            para, cost = truncate_tokens(para, max_tokens), max_tokens
        if current and used + cost > max_tokens:
            pieces.append("\n\n".join(current))
            current, used = [], 0
        current.append(para)
        used += cost
    if current:
        pieces.append("\n\n".join(current))
    return pieces


def split_document(text: str, fallback_title: str, max_tokens: int = 400) -> list[Chunk]:
    """A document as chunks: one per heading (split further when long), else by paragraphs."""
    headings = parse_headings(text)
    chunks: list[Chunk] = []
    first = headings[0].start if headings else len(text)
    spans = [(fallback_title, "", text[:first])]
    spans += [(h.title, slug(h.title), h.text) for h in headings]
    for title, anchor, body in spans:
        # A heading with no body of its own says nothing a query could use.
        if len(body.strip()) - len(title) < 20:
            continue
        for i, piece in enumerate(_pieces(body, max_tokens)):
            label = title if i == 0 else f"{title} (part {i + 1})"
            chunks.append(Chunk(title=label, anchor=anchor, text=piece))
    return chunks


class Ranker:
    """BM25 (bm25s) over a list of texts; built in memory or loaded from disk."""

    def __init__(self, model: bm25s.BM25, size: int) -> None:
        self.model = model
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str]) -> Ranker:
        # Lazy: bm25s (and numpy) cost ~0.2 s, and a run without research
        # still imports this module for its models.
        import bm25s

        model = bm25s.BM25()
        if not texts:
            return cls(model, 0)
        # An empty token list would make bm25s drop the document from its counts.
        model.index([terms(t) or ["_"] for t in texts], show_progress=False)
        return cls(model, len(texts))

    def scores(self, query: str) -> list[float]:
        tokens = terms(query)
        if not tokens or not self.size:
            return [0.0] * self.size
        return [float(s) for s in self.model.get_scores(tokens)]

    def top(self, query: str, limit: int) -> list[tuple[int, float]]:
        """The best `limit` (index, score) pairs with a positive score, best first."""
        scores = self.scores(query)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [(i, scores[i]) for i in order[:limit] if scores[i] > 0]


def rank_passages(
    passages: list[Passage], ranker: Ranker, queries: list[Query], limit: int
) -> list[Passage]:
    """For each query its best `limit` passages; each passage once, at its best score."""
    best: dict[int, float] = {}
    for query in queries:
        for i, score in ranker.top(query.text, limit):
            best[i] = max(best.get(i, 0.0), score)
    order = sorted(best, key=lambda i: (-best[i], i))
    return [passages[i].model_copy(update={"score": round(best[i], 4)}) for i in order]
