"""The research and review stages as `generate` runs them (fake model, no network)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.core.errors import InputError
from agent.core.settings import Settings
from agent.pipeline.generate import Document, Recording, run_generate
from agent.providers.base import Request
from agent.providers.fake import FakeProvider, sample_instance
from research import ResearchConfig

FIXTURES = Path(__file__).parent / "fixtures" / "research"
TDD_NAME = "003_FTDD|Invoice_Search.md"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "0xcc", tmp_path / "0xcc")
    # The reference TID would be the output path: keep the folder, drop the file.
    (tmp_path / "0xcc" / "tids" / "003_FTID|Invoice_Search.md").unlink()
    return tmp_path


def responder(request: Request) -> str:
    """Schema-valid replies; research notes cite the passages they were shown."""
    if request.prompt_id == "research_queries":
        queries = [{"text": "PostgreSQL implementation patterns search", "sections": []}]
        return json.dumps({"queries": queries})
    if request.prompt_id == "research_notes":
        labels = sorted(set(_labels(request.messages[-1].content)))[:6]
        notes = [{"text": f"Guidance from {label}.", "passages": [label]} for label in labels]
        return json.dumps({"notes": notes})
    value = sample_instance(request.json_schema, request.label)
    if isinstance(value, dict) and "note_refs" in value:
        value["note_refs"] = ["R1"]
    return json.dumps(value)


def _labels(text: str) -> list[str]:
    import re

    return re.findall(r"^\[(P\d+)\] ", text, flags=re.M)


def generate(tree: Path, provider: FakeProvider, **kw: object) -> Document:
    settings = Settings(review=kw.pop("review", "off"))  # type: ignore[arg-type]
    return asyncio.run(
        run_generate(
            tree / "0xcc" / "tdds" / TDD_NAME,
            settings=settings,
            provider=provider,
            today="2026-01-02",
            force=True,
            **kw,  # type: ignore[arg-type]
        )
    )


def test_research_notes_join_every_section_prefix_and_references_name_prd_and_adr(
    tree: Path,
) -> None:
    provider = FakeProvider(responder=responder)
    doc = generate(tree, provider, research=ResearchConfig())

    drafts = [r for r in provider.requests if r.prompt_id == "draft_section"]
    systems = {r.messages[0].content for r in drafts}
    assert len(drafts) == 10 and len(systems) == 1  # one shared prefix, notes inside it
    assert "[R1]" in systems.pop()
    assert all("note_refs" in r.json_schema["properties"] for r in drafts)
    assert all(d.note_refs == ["R1"] for d in doc.sections)

    references = doc.markdown.split("## References", 1)[1]
    assert "003_FPRD|Invoice_Search.md" in references
    assert "000_PADR|Ledger.md" in references
    assert doc.record.research is not None and doc.record.research["notes"] >= 1
    assert doc.record.prompts["research_notes"] and doc.record.prompts["research_queries"]
    research_calls = [c for c in doc.record.calls if c.prompt_id.startswith("research")]
    assert research_calls and doc.record.totals.calls == len(doc.record.calls)


def test_a_rerun_reuses_the_research_and_sends_the_same_drafts(tree: Path) -> None:
    first = FakeProvider(responder=responder)
    generate(tree, first, research=ResearchConfig())
    again = FakeProvider(responder=responder)
    doc = generate(tree, again, research=ResearchConfig())

    assert not [r for r in again.requests if r.prompt_id.startswith("research")]
    assert doc.record.research is not None and doc.record.research["reused"] is True
    drafts = [r.messages for r in first.requests if r.prompt_id == "draft_section"]
    assert drafts == [r.messages for r in again.requests if r.prompt_id == "draft_section"]


def test_without_research_the_requests_carry_no_notes_and_no_note_refs(tree: Path) -> None:
    provider = FakeProvider(responder=responder)
    doc = generate(tree, provider)
    assert all("note_refs" not in r.json_schema["properties"] for r in provider.requests)
    assert "## References" not in doc.markdown and doc.record.research is None


def test_lint_review_writes_review_json_and_asks_the_model_nothing_more(tree: Path) -> None:
    provider = FakeProvider(responder=responder)
    doc = generate(tree, provider, review="lint", review_appendix=True)

    assert doc.path is not None
    path = Path(doc.path)
    report = json.loads((path.parent / ".tidsmith" / f"{path.stem}.review.json").read_text())
    assert report["checklist_basis"] == "lints"
    assert "## Review" in path.read_text(encoding="utf-8")
    assert doc.record.review == "lint"
    # Lints make no calls; a failing section is re-drafted once (max_revisions=1).
    revised = {c.section for c in doc.record.calls if c.prompt_id == "revise_section"}
    assert {c.prompt_id for c in doc.record.calls} <= {"draft_section", "revise_section"}
    assert revised == {r["section"] for r in report["revisions"]}
    assert len(provider.requests) == 10 + len(revised)


def test_llm_review_calls_are_in_the_record_and_totals(tree: Path) -> None:
    provider = FakeProvider(responder=responder)
    doc = generate(tree, provider, review="llm")
    kinds = [c.prompt_id for c in doc.record.calls]
    assert "review_checklist" in kinds
    assert len(provider.requests) == len(doc.record.calls) == doc.record.totals.calls
    assert doc.record.prompts["review_checklist"]


def test_replaying_a_cassette_without_its_research_flags_is_refused(tree: Path) -> None:
    tdd = tree / "0xcc" / "tdds" / TDD_NAME
    from agent.core.tdd import load_tdd
    from agent.core.templates import get_template
    from agent.draft.prompting import load_prompt

    tape = tree / "run.yaml"
    tape.write_text("interactions: []\nversion: 1\n")
    template = get_template("tid")
    meta = {
        "tool_version": "0",
        "model": "openai:m",
        "template": "tid",
        "template_version": template.version,
        "prompts": {"draft_section": load_prompt("draft_section").version},
        "tdd_sha256": load_tdd(tdd).sha256,
        "date": "2026-01-01",
        "research": True,
    }
    tape.with_name("run.yaml.meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="recorded with --research"):
        asyncio.run(
            run_generate(
                tdd,
                settings=Settings(),
                recording=Recording(path=tape, mode="replay"),
                write=False,
            )
        )


def test_cli_research_flags_reach_the_pipeline(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tree / "no-such-docs"
    monkeypatch.chdir(tree)
    code = main(
        [
            "generate",
            f"0xcc/tdds/{TDD_NAME}",
            "-m",
            "fake",
            "--docs",
            str(missing),
            "--review",
            "off",
            "-q",
        ]
    )
    assert code == 0
    # The missing folder is a skipped source, not a failed run; strict makes it one.
    record = json.loads(
        (tree / "0xcc" / "tids" / ".tidsmith" / "003_FTID|Invoice_Search.run.json").read_text()
    )
    assert record["research"]["failures"]
    # -q hides progress, not a source that failed: one warning line says so.
    warned = capsys.readouterr().err
    assert "warning: research source docs 'no-such-docs' skipped" in warned
    code = main(
        [
            "generate",
            f"0xcc/tdds/{TDD_NAME}",
            "-m",
            "fake",
            "--docs",
            str(missing),
            "--strict-research",
            "--force",
            "-q",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "no-such-docs" in err and len(err.strip().splitlines()) == 1


def test_a_misspelt_research_setting_is_an_error(tmp_path: Path) -> None:
    from agent.core.errors import ConfigError
    from research.config import load_research_config

    config = tmp_path / "tidsmith.toml"
    config.write_text(
        '[research]\ndocs = ["docs"]\n\n[[research.mcp]]\nname = "ref"\ncomand = "x"\n'
    )
    with pytest.raises(ConfigError, match=r"\[research\] mcp\.0\.(command|comand)"):
        load_research_config(config_path=config)
    config.write_text('[research]\ndocs = ["docs"]\ncodebase = "app"\n')
    loaded = load_research_config(config_path=config, docs=[Path("more")])
    # Folders in the file are relative to the file; flags add to them.
    assert loaded.docs == [tmp_path / "docs", Path("more")]
    assert loaded.codebase == tmp_path / "app"


def test_the_library_takes_a_langchain_retriever_as_a_research_source(tree: Path) -> None:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document as LcDocument
    from langchain_core.retrievers import BaseRetriever

    from agent import agenerate

    class Wiki(BaseRetriever):
        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[LcDocument]:
            text = "Use keyset pagination on invoices.created_at for search results."
            return [LcDocument(page_content=text, metadata={"title": "Team wiki: search"})]

    provider = FakeProvider(responder=responder)
    doc = asyncio.run(
        agenerate(
            tree / "0xcc" / "tdds" / TDD_NAME,
            model=provider,
            retrievers=[Wiki()],
            write=False,
            settings=Settings(review="off"),
        )
    )
    notes_prompt = [r for r in provider.requests if r.prompt_id == "research_notes"]
    assert any("keyset pagination" in r.messages[-1].content for r in notes_prompt)
    assert "Team wiki: search" in doc.markdown.split("## References", 1)[1]
