"""`agent.as_runnable`: tidsmith inside LCEL chains, batches and astream_events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from agent import Document, Settings, as_runnable
from agent.core.errors import InputError
from agent.providers.fake import FakeProvider
from agent.runnable import TddInput

TDD = "# Technical Design Document: {name}\n\n## 1. Index\n\nAn inverted index in SQLite.\n"


def _tdds(root: Path, count: int) -> list[Path]:
    folder = root / "0xcc" / "tdds"
    folder.mkdir(parents=True)
    paths = []
    for i in range(1, count + 1):
        path = folder / f"00{i}_FTDD|Feature_{i}.md"
        path.write_text(TDD.format(name=f"Feature {i}"), encoding="utf-8")
        paths.append(path)
    return paths


def _path_and_markdown(doc: Document) -> tuple[str | None, str]:
    return doc.path, doc.markdown


def test_runnable_in_an_lcel_chain_picked_by_a_langchain_fake_chat_model(tmp_path: Path) -> None:
    [tdd] = _tdds(tmp_path, 1)
    # The chat model decides which TDD to turn into a TID; tidsmith writes it.
    picker = ChatPromptTemplate.from_messages([("human", "Which TDD? {ask}")]) | (
        FakeListChatModel(responses=[str(tdd)])
    )
    chain = (
        picker
        | StrOutputParser()
        | as_runnable(model="fake", settings=Settings(review="lint"))
        | RunnableLambda(_path_and_markdown)
    )
    assert isinstance(chain, Runnable)
    path, markdown = chain.invoke({"ask": "the search one"})
    assert path == str(tmp_path / "0xcc" / "tids" / "001_FTID|Feature_1.md")
    assert Path(path or "").read_text(encoding="utf-8") == markdown
    assert markdown.startswith("# Technical Implementation Document: Feature 1")


def test_ainvoke_with_a_mapping_and_write_false(tmp_path: Path) -> None:
    [tdd] = _tdds(tmp_path, 1)
    runnable = as_runnable(template="spec", model="fake", write=False)
    doc = asyncio.run(runnable.ainvoke({"tdd": str(tdd)}))
    assert isinstance(doc, Document)
    assert doc.path is None and "Technical Implementation Spec" in doc.markdown
    assert not (tmp_path / "0xcc" / "specs").exists()


def test_bad_input_is_our_one_line_error() -> None:
    with pytest.raises(InputError, match="TDD path or a mapping"):
        as_runnable(model="fake").invoke(42)  # pyright: ignore[reportArgumentType]


def test_batch_three_tdds_under_a_concurrency_limit(tmp_path: Path) -> None:
    paths = _tdds(tmp_path, 3)
    # One call at a time per document: calls in flight = documents in flight.
    provider = FakeProvider(delay=0.01)
    runnable = as_runnable(model=provider, settings=Settings(concurrency=1, review="off"))
    docs = runnable.batch([str(p) for p in paths], config={"max_concurrency": 2})
    assert [Path(d.path or "").name for d in docs] == [
        "001_FTID|Feature_1.md",
        "002_FTID|Feature_2.md",
        "003_FTID|Feature_3.md",
    ]
    assert 1 <= provider.max_in_flight <= 2
    assert len(provider.requests) == 30


def test_abatch_keeps_exactly_the_limit_in_flight(tmp_path: Path) -> None:
    paths = _tdds(tmp_path, 3)
    provider = FakeProvider(delay=0.01)
    runnable = as_runnable(model=provider, settings=Settings(concurrency=1, review="off"))
    docs = asyncio.run(runnable.abatch(list[TddInput](paths), config={"max_concurrency": 2}))
    assert all(d.path for d in docs)
    # Two documents start at once and each waits on its first call: never a third.
    assert provider.max_in_flight == 2


def test_astream_events_has_one_custom_event_per_section(tmp_path: Path) -> None:
    [tdd] = _tdds(tmp_path, 1)
    runnable = as_runnable(model="fake", settings=Settings(review="lint"))

    async def collect() -> list[dict[str, object]]:
        return [
            {"event": e["event"], "name": e["name"], "data": e["data"]}
            async for e in runnable.astream_events(str(tdd), version="v2")
        ]

    events = asyncio.run(collect())
    sections = [e for e in events if e["name"] == "tidsmith.section"]
    assert all(e["event"] == "on_custom_event" for e in sections)
    assert len(sections) == 10
    data = [e["data"] for e in sections]
    assert [d["done"] for d in data] == list(range(1, 11))  # pyright: ignore[reportIndexIssue]
    assert {d["section"] for d in data} == {  # pyright: ignore[reportIndexIssue]
        s.id for s in runnable.template.sections
    }
    # Every section event precedes the end of the run that carries the document.
    end = [i for i, e in enumerate(events) if e["event"] == "on_chain_end"][-1]
    assert max(i for i, e in enumerate(events) if e["name"] == "tidsmith.section") < end
    output = events[end]["data"]["output"]  # pyright: ignore[reportIndexIssue]
    assert isinstance(output, Document)
