"""Research sources one by one: related documents, the docs index, the codebase, MCP, LangChain."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from agent.core.errors import RetrievalError
from agent.core.tdd import load_tdd
from research.base import McpServer, Query
from research.codebase import CodebaseSource
from research.docs import DocsSource
from research.langchain import LangChainSource
from research.mcp import McpSource
from research.related import RelatedSource, find_related

FIXTURES = Path(__file__).parent / "fixtures" / "research"
TDD = FIXTURES / "0xcc" / "tdds" / "003_FTDD|Invoice_Search.md"
MCP_SERVER = FIXTURES / "mcp_docs_server.py"


def q(*texts: str) -> list[Query]:
    return [Query(text=t, sections=["implementation_strategy"]) for t in texts]


# --- related documents ------------------------------------------------------------


def test_related_finds_the_linked_prd_and_the_project_adr_and_prd_but_not_the_tid() -> None:
    docs = find_related(load_tdd(TDD))
    names = {Path(d.path).name: d for d in docs}
    assert set(names) == {"003_FPRD|Invoice_Search.md", "000_PADR|Ledger.md", "000_PPRD|Ledger.md"}
    assert names["003_FPRD|Invoice_Search.md"].why == "linked"
    assert names["003_FPRD|Invoice_Search.md"].link == "../prds/003_FPRD|Invoice_Search.md"
    assert names["000_PADR|Ledger.md"].why == "project"


def test_related_search_ranks_sections_and_gives_every_document_a_passage() -> None:
    source = RelatedSource(load_tdd(TDD))
    passages = asyncio.run(
        source.search(q("PostgreSQL implementation patterns keyset pagination"), 1)
    )
    assert passages[0].source_id == "prd:003_FPRD|Invoice_Search.md"
    assert passages[0].location == "../prds/003_FPRD|Invoice_Search.md#pagination-requirements"
    assert "keyset pagination" in passages[0].text
    # The ADR shares no word with the query, yet decisions must reach the notes.
    assert {p.source_id for p in passages} == {
        "prd:003_FPRD|Invoice_Search.md",
        "adr:000_PADR|Ledger.md",
        "prd:000_PPRD|Ledger.md",
    }
    assert all(p.document for p in passages)


def test_related_fingerprint_changes_with_a_document(tmp_path: Path) -> None:
    root = tmp_path / "0xcc"
    shutil.copytree(FIXTURES / "0xcc", root)
    source = RelatedSource(load_tdd(root / "tdds" / TDD.name))
    before = source.fingerprint()
    assert source.fingerprint() == before
    adr = root / "adrs" / "000_PADR|Ledger.md"
    adr.write_text(adr.read_text() + "\n## Decision 3: Queues\n\nUse Redis streams.\n")
    assert source.fingerprint() != before


# --- local docs (bm25s index on disk) ------------------------------------------------


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(FIXTURES / "docs", target)
    return target


def test_docs_index_is_built_then_loaded_then_rebuilt_when_a_file_changes(
    docs_dir: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    query = q("Redis implementation patterns cache TTL")

    first = DocsSource([docs_dir], index_dir)
    found = asyncio.run(first.search(query, 2))
    assert first.last_index == "built"
    assert (first.index_path / "manifest.json").is_file()
    assert found[0].source_id == "docs:docs/redis-caching.md#cache-aside-with-ttl"

    second = DocsSource([docs_dir], index_dir)
    again = asyncio.run(second.search(query, 2))
    assert second.last_index == "loaded"
    assert [p.model_dump() for p in again] == [p.model_dump() for p in found]

    # A new section in an indexed file: the stale index must not answer.
    guide = docs_dir / "guides" / "postgres-search.md"
    guide.write_text(guide.read_text() + "\n## Zanzibar vacuum\n\nRun zanzibar vacuum weekly.\n")
    third = DocsSource([docs_dir], index_dir)
    hits = asyncio.run(third.search(q("PostgreSQL implementation patterns zanzibar"), 2))
    assert third.last_index == "built"
    assert hits[0].source_id == "docs:docs/guides/postgres-search.md#zanzibar-vacuum"

    # A removed file is gone from the rebuilt index.
    (docs_dir / "redis-caching.md").unlink()
    fourth = DocsSource([docs_dir], index_dir)
    gone = asyncio.run(fourth.search(query, 3))
    assert fourth.last_index == "built"
    assert not any("redis-caching" in p.source_id for p in gone)


def test_docs_index_survives_a_corrupt_manifest(docs_dir: Path, tmp_path: Path) -> None:
    source = DocsSource([docs_dir], tmp_path / "index")
    asyncio.run(source.search(q("keyset pagination"), 1))
    (source.index_path / "manifest.json").write_text("{not json")
    again = DocsSource([docs_dir], tmp_path / "index")
    hits = asyncio.run(again.search(q("keyset pagination"), 1))
    assert again.last_index == "built"
    assert hits and "keyset" in hits[0].text.lower()


def test_docs_missing_folder_is_a_retrieval_error(tmp_path: Path) -> None:
    source = DocsSource([tmp_path / "nope"], tmp_path / "index")
    with pytest.raises(RetrievalError, match="does not exist"):
        asyncio.run(source.search(q("anything"), 1))


# --- codebase ----------------------------------------------------------------------


@pytest.fixture
def codebase(tmp_path: Path) -> Path:
    root = tmp_path / "invoices"
    shutil.copytree(FIXTURES / "codebase", root)
    # Test files are made here, not kept in the fixture, so pytest does not collect them.
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text("")
    (root / "tests" / "test_api.py").write_text("def test_x():\n    pass\n")
    return root


def test_codebase_passages_keep_pinned_versions_verbatim(codebase: Path) -> None:
    passages = asyncio.run(CodebaseSource(codebase).search([], 3))
    by_id = {p.source_id: p for p in passages}
    deps = by_id["codebase:invoices:dependencies"].text
    for pin in ("fastapi==0.115.0", "sqlalchemy==2.0.36", "redis==5.2.0", "pytest==8.3.3"):
        assert pin in deps
    # A range in the manifest is resolved from the lock file.
    assert "pydantic==2.9.2 (uv.lock)" in deps
    conventions = by_id["codebase:invoices:conventions"].text
    assert "tests/" in conventions and "conftest.py" in conventions
    assert "src layout (src/invoices)" in conventions
    assert "FastAPI" in conventions and "Dockerfile" in conventions
    assert "requires-python >=3.12" in conventions
    tree = by_id["codebase:invoices:tree"].text.splitlines()
    assert tree[0] == "invoices/" and "    invoices/" in tree and "      api.py" in tree
    assert all(p.verbatim for p in passages)


def test_codebase_tree_is_bounded(tmp_path: Path) -> None:
    for i in range(120):
        (tmp_path / f"module_{i:03}.py").write_text("")
    tree = asyncio.run(CodebaseSource(tmp_path).search([], 3))[-1].text.splitlines()
    assert len(tree) <= 81 and "cut at 80 lines" in tree[-1]


def test_codebase_fingerprint_follows_the_manifest(codebase: Path) -> None:
    source = CodebaseSource(codebase)
    before = source.fingerprint()
    pyproject = codebase / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("0.115.0", "0.115.5"))
    assert source.fingerprint() != before


def test_codebase_missing_folder_is_a_retrieval_error(tmp_path: Path) -> None:
    with pytest.raises(RetrievalError, match="codebase folder"):
        asyncio.run(CodebaseSource(tmp_path / "gone").search([], 3))


# --- MCP over stdio ------------------------------------------------------------------


def server(*args: str, timeout: float = 20.0) -> McpServer:
    return McpServer(
        name="fixture-docs",
        command=sys.executable,
        args=[str(MCP_SERVER), *args],
        tool="search_docs",
        timeout=timeout,
    )


def test_mcp_round_trip_returns_the_tool_results_as_passages() -> None:
    source = McpSource(server())
    queries = q("FastAPI implementation patterns pagination cursor", "Redis caching TTL")
    passages = asyncio.run(source.search(queries, 1))
    assert len(passages) == 2  # one per query: the limit applies per query
    assert "next_cursor" in passages[0].text
    assert passages[0].title == "fixture-docs: FastAPI pagination"
    assert "SET key value EX" in passages[1].text
    assert passages[0].location.startswith("mcp://fixture-docs/search_docs?query=")
    again = asyncio.run(McpSource(server()).search(queries, 1))
    assert [p.source_id for p in again] == [p.source_id for p in passages]


def test_mcp_missing_command_is_one_line() -> None:
    bad = server().model_copy(update={"command": "/nonexistent/tidsmith-mcp"})
    with pytest.raises(RetrievalError) as err:
        asyncio.run(McpSource(bad).search(q("x y z"), 1))
    assert "not found" in str(err.value) and "\n" not in str(err.value)


def test_mcp_crashing_server_is_one_line_with_its_last_words() -> None:
    with pytest.raises(RetrievalError) as err:
        asyncio.run(McpSource(server("--crash")).search(q("x y z"), 1))
    message = str(err.value)
    assert "fixture-docs" in message and "\n" not in message
    assert "cannot open the docs index" in message


def test_mcp_unknown_tool_names_the_tools_it_has() -> None:
    wrong = server().model_copy(update={"tool": "find"})
    with pytest.raises(RetrievalError, match=r"no tool 'find' \(it has: search_docs\)"):
        asyncio.run(McpSource(wrong).search(q("x y z"), 1))


def test_mcp_call_that_never_answers_times_out() -> None:
    started = time.perf_counter()
    with pytest.raises(RetrievalError, match="did not answer within 1 s"):
        asyncio.run(McpSource(server("--hang", timeout=1.0)).search(q("x y z"), 1))
    assert time.perf_counter() - started < 15


def test_mcp_fixture_server_exits_when_stdin_closes() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(MCP_SERVER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=10) is not None
    finally:
        if proc.poll() is None:
            proc.kill()


def test_mcp_fingerprint_leaves_env_values_out() -> None:
    one = server().model_copy(update={"env": {"DOCS_API_KEY": "sk-one"}})
    two = server().model_copy(update={"env": {"DOCS_API_KEY": "sk-two"}})
    assert McpSource(one).fingerprint() == McpSource(two).fingerprint()
    assert McpSource(one).fingerprint() != McpSource(server()).fingerprint()


# --- LangChain retrievers --------------------------------------------------------------


class KeywordRetriever(BaseRetriever):
    """Documents that contain any word of the query."""

    documents: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        words = set(query.lower().split())
        return [d for d in self.documents if words & set(d.page_content.lower().split())]


class BrokenRetriever(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        raise ConnectionError("vector store unreachable")


def test_langchain_retriever_documents_become_passages() -> None:
    retriever = KeywordRetriever(
        documents=[
            Document(
                page_content="celery retries use exponential backoff",
                metadata={"source": "wiki/celery.md", "title": "Celery retries"},
            ),
            Document(page_content="alembic migrations run on deploy", id="doc-7"),
        ]
    )
    source = LangChainSource(retriever, name="wiki")
    passages = asyncio.run(source.search(q("celery backoff", "alembic deploy", "nothing"), 2))
    assert [p.source_id for p in passages] == [
        "langchain:wiki:wiki/celery.md",
        "langchain:wiki:doc-7",
    ]
    assert passages[0].title == "Celery retries" and passages[0].location == "wiki/celery.md"
    assert passages[1].text == "alembic migrations run on deploy"


def test_langchain_retriever_failure_is_a_retrieval_error() -> None:
    with pytest.raises(RetrievalError, match="vector store unreachable"):
        asyncio.run(LangChainSource(BrokenRetriever(), name="vs").search(q("x"), 1))


def test_docs_fingerprint_sees_a_touched_file(docs_dir: Path, tmp_path: Path) -> None:
    source = DocsSource([docs_dir], tmp_path / "index")
    before = source.fingerprint()
    path = docs_dir / "notes.txt"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert source.fingerprint() != before
