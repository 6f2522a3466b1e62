"""Any langchain-core `BaseRetriever` as a research source (library API only).

Imports only agent.core and research.base; never agent.providers (whose LangChain chat
model is another thing) or the stages.
"""

from __future__ import annotations

import hashlib
import json

from langchain_core.retrievers import BaseRetriever

from agent.core.errors import RetrievalError
from agent.core.tokens import truncate_tokens
from research.base import Passage, Query

MAX_DOC_TOKENS = 600


class LangChainSource:
    """Calls `retriever.ainvoke(query)` per query; documents become passages."""

    kind = "langchain"

    def __init__(self, retriever: BaseRetriever, name: str | None = None) -> None:
        self.retriever = retriever
        self.name = name or retriever.get_name()

    def fingerprint(self) -> str:
        # A retriever has no content version we can read; its class and metadata
        # stand in. Put a version in `metadata` to make a rerun search again.
        shape = [type(self.retriever).__qualname__, self.name, self.retriever.metadata or {}]
        return hashlib.sha256(json.dumps(shape, default=str).encode()).hexdigest()

    async def search(self, queries: list[Query], limit: int) -> list[Passage]:
        passages: list[Passage] = []
        for query in queries:
            try:
                documents = await self.retriever.ainvoke(query.text)
            # A retriever is user code over any backend: whatever it raises means
            # this source is unavailable for this run, not that tidsmith is broken.
            except Exception as e:
                raise RetrievalError(
                    f"retriever {self.name!r} failed: {type(e).__name__}: {str(e)[:200]}"
                ) from e
            for rank, doc in enumerate(documents[:limit]):
                meta = doc.metadata or {}
                where = str(meta.get("source") or meta.get("url") or meta.get("path") or "")
                digest = hashlib.sha256(doc.page_content.encode()).hexdigest()[:12]
                ident = doc.id or where or digest
                title = str(meta.get("title") or where or doc.page_content[:60])
                passages.append(
                    Passage(
                        source_id=f"langchain:{self.name}:{ident}",
                        kind=self.kind,
                        title=" ".join(title.split()),
                        location=where or f"{self.name} (retriever)",
                        text=truncate_tokens(doc.page_content, MAX_DOC_TOKENS),
                        score=float(limit - rank),
                    )
                )
        return passages
