"""Review: every lint passing and failing, the coverage matrix, the revise loop, `review` exits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.core.tdd import load_tdd
from agent.core.templates import get_template
from agent.document.assemble import DocumentHeader, assemble
from agent.document.lints import (
    Finding,
    coverage_matrix,
    lint_document,
    norm_title,
    run_lints,
    split_document,
)
from agent.draft.plan import DraftPlan, SectionDraft, plan_messages
from agent.draft.sections import draft_all
from agent.providers.base import Reply, Request
from agent.providers.fake import FakeProvider
from agent.review import (
    ReviewReport,
    llm_review,
    review_and_revise,
    review_appendix,
    summary_lines,
)

FIXTURES = Path(__file__).parent / "fixtures"
GOOD_TID = (FIXTURES / "review" / "good_tid.md").read_text(encoding="utf-8")
GOOD_SPEC = (FIXTURES / "review" / "good_spec.md").read_text(encoding="utf-8")
TDD_PATH = FIXTURES / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
TID = get_template("tid")
SPEC = get_template("spec")


def ids(findings: list[Finding], severity: str = "error") -> set[str]:
    return {f.id for f in findings if f.severity == severity}


def with_block(doc: str, lang: str, code: str, heading: str = "## 8. Code Examples") -> str:
    """The document with one more fenced block at the start of a section."""
    return doc.replace(f"{heading}\n", f"{heading}\n\n```{lang}\n{code}\n```\n", 1)


def test_the_good_fixtures_have_no_errors() -> None:
    assert ids(lint_document(GOOD_TID, TID)) == set()
    assert ids(lint_document(GOOD_SPEC, SPEC)) == set()
    assert len([s for s in split_document(GOOD_TID, TID) if s.section_id]) == 10


# --- sections --------------------------------------------------------------------------


def test_missing_section() -> None:
    start = GOOD_TID.index("## 5. Configuration")
    end = GOOD_TID.index("## 6. Testing Implementation")
    found = lint_document(GOOD_TID[:start] + GOOD_TID[end:], TID)
    assert [f.section for f in found if f.id == "section.missing"] == ["configuration"]


def test_sections_out_of_order() -> None:
    start = GOOD_TID.index("## 5. Configuration")
    end = GOOD_TID.index("## 6. Testing Implementation")
    moved = GOOD_TID[:start] + GOOD_TID[end:] + "\n" + GOOD_TID[start:end]
    found = lint_document(moved, TID)
    assert [f.section for f in found if f.id == "section.order"] == ["configuration"]
    assert "section.missing" not in ids(found)


def test_empty_section() -> None:
    start = GOOD_TID.index("## 5. Configuration")
    end = GOOD_TID.index("## 6. Testing Implementation")
    emptied = GOOD_TID[:start] + "## 5. Configuration\n\n### Nothing\n\n" + GOOD_TID[end:]
    found = lint_document(emptied, TID)
    assert [f.section for f in found if f.id == "section.empty"] == ["configuration"]


def test_headings_match_tolerantly() -> None:
    assert norm_title("3. Key Algorithms") == norm_title("key algorithms")
    assert norm_title("4.3 Data Sanitization (Added Dec 2025)") == "data sanitization"
    relaxed = GOOD_TID.replace("## 3. Key Algorithms", "## KEY ALGORITHM").replace(
        "## 2. Code Structure", "## Code-Structure"
    )
    assert ids(lint_document(relaxed, TID)) == set()
    # A different section with a similar name is not taken for a template one.
    other = GOOD_TID.replace("## 1. Implementation Strategy", "## 1. Implementation Order")
    assert [f.section for f in lint_document(other, TID) if f.id == "section.missing"] == [
        "implementation_strategy"
    ]


# --- code blocks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "good", "bad", "lint"),
    [
        ("python", "def f() -> int:\n    return 1", "def f(:\n    return 1", "code.python-syntax"),
        ("json", '{"a": 1}', '{"a": 1,}', "code.json-syntax"),
        ("yaml", "a: 1\nb: [1, 2]", "a: [1, 2\nb: 3", "code.yaml-syntax"),
        ("toml", 'a = 1\n[b]\nc = "x"', "a = = 1", "code.toml-syntax"),
    ],
)
def test_code_blocks_parse(lang: str, good: str, bad: str, lint: str) -> None:
    assert ids(lint_document(with_block(GOOD_TID, lang, good), TID)) == set()
    found = lint_document(with_block(GOOD_TID, lang, bad), TID)
    assert [f.section for f in found if f.id == lint] == ["code_examples"]


def test_language_tag_must_match_content() -> None:
    # A python block that is JSON parses as Python, so it is a warning...
    json_in_python = lint_document(with_block(GOOD_TID, "python", '{"a": [1, 2]}'), TID)
    assert "code.language-mismatch" in ids(json_in_python, "warning")
    # ...but TypeScript tagged python does not parse: an error, said as a mismatch.
    ts = "interface Export {\n  id: string;\n}\nexport const x: Export = { id: 'a' };"
    found = lint_document(with_block(GOOD_TID, "python", ts), TID)
    assert "code.language-mismatch" in ids(found)
    assert "code.python-syntax" not in ids(found)
    # Correctly tagged code raises nothing.
    assert ids(lint_document(with_block(GOOD_TID, "typescript", ts), TID)) == set()


def test_unclosed_fence() -> None:
    found = lint_document(GOOD_TID + "\n```python\nx = 1\n", TID)
    assert "code.unclosed-fence" in ids(found)


# --- placeholders ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "We will build TODO later.",
        "The [Feature Name] service exports invoices.",
        "Install <your-package> first.",
        "...",
        "Connect with postgres://admin:hunter2@db.example.com/billing",
        "Set password=secret for admin@example.com",
    ],
)
def test_placeholders_in_prose(bad: str) -> None:
    doc = GOOD_TID.replace("## 5. Configuration\n", f"## 5. Configuration\n\n{bad}\n", 1)
    found = [f for f in lint_document(doc, TID) if f.id == "placeholder"]
    assert [f.section for f in found] == ["configuration"]


@pytest.mark.parametrize(
    "fine",
    [
        "Rows are typed as list[Feature] in the worker.",
        "The dashboard waits... then polls again.",
        "Docs live at https://docs.example.com/billing.",
        "See [the TDD](../tdds/001_FTDD|Billing_Export.md).",
    ],
)
def test_ordinary_prose_is_not_a_placeholder(fine: str) -> None:
    doc = GOOD_TID.replace("## 5. Configuration\n", f"## 5. Configuration\n\n{fine}\n", 1)
    assert "placeholder" not in ids(lint_document(doc, TID))


def test_elided_code_and_stub_bodies_in_complete_examples() -> None:
    elided = with_block(
        GOOD_TID, "python", "def f() -> int:\n    # ... rest of the logic\n    return 1"
    )
    assert "placeholder" in ids(lint_document(elided, TID))
    stub = "def export(month: str) -> None:\n    '''Export a month.'''\n    pass"
    assert "placeholder" in ids(lint_document(with_block(GOOD_TID, "python", stub), TID))
    # The same stub in Key Class Definitions (signatures, not complete code) is fine.
    signatures = with_block(GOOD_TID, "python", stub, heading="### Key Class Definitions")
    assert "placeholder" not in ids(lint_document(signatures, TID))


# --- spec rules ------------------------------------------------------------------------


def test_spec_word_count() -> None:
    padding = "\n\n" + " ".join(["word"] * (SPEC.max_words or 0)) + "\n"
    doc = GOOD_SPEC.replace("## Related Documents", padding + "## Related Documents")
    assert "spec.word-count" in ids(lint_document(doc, SPEC))


def test_spec_tldr_has_two_or_three_sentences() -> None:
    start = GOOD_SPEC.index("## TL;DR\n") + len("## TL;DR\n")
    end = GOOD_SPEC.index("## 1. Technology Stack")
    one = GOOD_SPEC[:start] + "\nA FastAPI 0.115 service on Python 3.12.\n\n" + GOOD_SPEC[end:]
    assert [f.section for f in lint_document(one, SPEC) if f.id == "spec.tldr-sentences"] == [
        "tldr"
    ]
    four = GOOD_SPEC[:start] + "\nOne. Two e.g. this. Three. Four.\n\n" + GOOD_SPEC[end:]
    assert "spec.tldr-sentences" in ids(lint_document(four, SPEC))


def test_performance_targets_need_numbers() -> None:
    doc = GOOD_SPEC.replace("| p95 < 60 s |", "| fast |")
    found = [f for f in lint_document(doc, SPEC) if f.id == "perf.target-numbers"]
    assert [f.section for f in found] == ["performance_requirements"]
    # The TID's bottleneck table has a Target column too.
    assert "perf.target-numbers" in ids(lint_document(GOOD_TID.replace("p95 < 60 s", "fast"), TID))


def test_spec_adr_references(tmp_path: Path) -> None:
    tdd = load_tdd(TDD_PATH)  # links an ADR document
    assert "spec.adr-references" not in ids(lint_document(GOOD_SPEC, SPEC, tdd=tdd))
    bare = GOOD_SPEC.replace("ADR-001", "the platform decision")
    assert "spec.adr-references" in ids(lint_document(bare, SPEC, tdd=tdd))
    # Without a TDD there is nothing to hold it to: a warning only.
    assert "spec.adr-references" in ids(lint_document(bare, SPEC), "warning")
    # The TDD links its ADR as a file and names no ADR-NNN: a link to that file cites it,
    # and a number the spec gives is one the TDD never named.
    linked = bare + "\n- [000_PADR|Platform](../adrs/000_PADR|Platform.md)\n"
    assert "spec.adr-references" not in ids(lint_document(linked, SPEC, tdd=tdd))
    assert "spec.adr-unknown" in ids(lint_document(GOOD_SPEC, SPEC, tdd=tdd), "warning")


# --- dependencies ----------------------------------------------------------------------


# The good TID's dependency table as requirement lines, as a custom template or
# an older TID (before tid 1.7) writes them.
TABLE = """| Package | Version | Used For |
|---|---|---|
| fastapi | 0.115.0 | API endpoint |
| celery | 5.4.0 | export worker |
| pytest | 8.3.3 | tests |
| ruff | 0.6.9 | lint |
"""
LINES = """```text
fastapi==0.115.0  # API endpoint
celery==5.4.0  # export worker
# development
pytest==8.3.3  # tests
```
"""
TID_LINES = GOOD_TID.replace(TABLE, LINES)


def test_dependencies_carry_exact_versions() -> None:
    assert TABLE in GOOD_TID
    assert "deps.unpinned" not in ids(lint_document(TID_LINES, TID))
    unpinned = TID_LINES.replace("celery==5.4.0", "celery")
    assert [f.section for f in lint_document(unpinned, TID) if f.id == "deps.unpinned"] == [
        "development_tools"
    ]
    ranged = TID_LINES.replace("celery==5.4.0", "celery>=5")
    assert "deps.range" in ids(lint_document(ranged, TID), "warning")
    install = GOOD_TID.replace("pytest -q", "pip install -r requirements.txt httpx\npytest -q")
    assert "deps.unpinned" in ids(lint_document(install, TID))
    assert "deps.unpinned" not in ids(lint_document(GOOD_TID, TID))


def test_versions_agree_with_the_codebase() -> None:
    assert "deps.version-mismatch" not in ids(
        lint_document(GOOD_TID, TID, codebase_versions={"Celery": "5.4.0"})
    )
    found = lint_document(TID_LINES, TID, codebase_versions={"celery": "5.3.6"})
    assert [f.message for f in found if f.id == "deps.version-mismatch"] == [
        "celery==5.4.0 but the codebase uses 5.3.6"
    ]
    found = lint_document(GOOD_TID, TID, codebase_versions={"celery": "5.3.6"})
    assert [f.message for f in found if f.id == "deps.version-mismatch"] == [
        "celery 5.4.0 but the codebase uses 5.3.6"
    ]


def test_version_table_cells_need_versions() -> None:
    assert "deps.unpinned" in ids(
        lint_document(GOOD_SPEC.replace("| 0.115.0 |", "| latest |"), SPEC)
    )


# --- coverage --------------------------------------------------------------------------


def test_coverage_matrix_from_text_and_tdd_refs() -> None:
    tdd = load_tdd(TDD_PATH)
    matrix, orphans = coverage_matrix(tdd, GOOD_TID, TID, None)
    assert "5. Security" in orphans
    assert matrix["5. Security"] == []
    # "Performance" is named by the performance section's heading.
    assert "performance_implementation" in matrix["4. Performance"]
    # A section model that cites the heading covers it, and its parent too.
    refs = {"configuration": {"tdd_refs": ["5. Security", "2.1 Export Entity"]}}
    matrix, orphans = coverage_matrix(tdd, GOOD_TID, TID, refs)
    assert matrix["5. Security"] == ["configuration"]
    assert "configuration" in matrix["2. Database Schema"]
    assert "5. Security" not in orphans
    # Named in the text: the identifier in a heading is enough.
    doc = GOOD_TID.replace(
        "## 5. Configuration\n", "## 5. Configuration\n\nThe Export Entity row.\n"
    )
    matrix, _ = coverage_matrix(tdd, doc, TID, None)
    assert matrix["2.1 Export Entity"] == ["configuration"]
    found = lint_document(GOOD_TID, TID, tdd=tdd)
    assert {f.message for f in found if f.id == "coverage.orphan"} >= {
        "no section covers the TDD's '5. Security'"
    }


# --- LLM review and revision -----------------------------------------------------------

# Code that parses, so drafting's code repair leaves it, but that a lint fails.
BROKEN = (
    "def page_invoices(rows: list[int]) -> list[int]:\n    # TODO: page the rows\n    return rows"
)
FIXED = "def page_invoices(rows: list[int]) -> list[int]:\n    return rows"


def good_content(section_id: str, code_override: str | None = None) -> dict[str, object]:
    """Section content that assembles to the good fixture's section."""
    sections = json.loads((FIXTURES / "review" / "good_tid.sections.json").read_text())
    content = json.loads(json.dumps(sections[section_id]))
    if code_override is not None:
        content["core_business_logic"]["code"] = code_override
    return content


def asked(request: Request) -> list[str]:
    """The checklist item ids a review request asks about (one item is a `const`)."""
    field = request.json_schema["$defs"]["ChecklistVerdict"]["properties"]["id"]
    return field.get("enum") or [field["const"]]


def verdict_reply(request: Request) -> str:
    verdicts = [
        {"id": i, "reason": "checked", "passed": True, "section": ""} for i in asked(request)
    ]
    return json.dumps({"verdicts": verdicts})


def responder(request: Request) -> str:
    if request.prompt_id == "review_checklist":
        return verdict_reply(request)
    revising = len(request.messages) > 2
    if request.label == "key_algorithms":
        return json.dumps(good_content("key_algorithms", FIXED if revising else BROKEN))
    return json.dumps(good_content(request.label))


def render(drafts: list[SectionDraft]) -> str:
    header = DocumentHeader(
        title="Technical Implementation Document: Billing Export",
        doc_id="001_FTID|Billing_Export",
        source_tdd="001_FTDD|Billing_Export",
        source_link="../tdds/001_FTDD|Billing_Export.md",
        template="tid",
        template_version=TID.version,
        model="fake:fake",
        date="2026-01-02",
    )
    return assemble(TID, header, {d.section_id: d.content for d in drafts})


def run_revise(
    provider: FakeProvider, *, llm: bool, max_revisions: int = 1
) -> tuple[DraftPlan, tuple[list[SectionDraft], ReviewReport]]:
    tdd = load_tdd(TDD_PATH)
    plan = plan_messages(TID, tdd, provider, max_tokens=800, schema_in_text=False)

    async def go() -> tuple[list[SectionDraft], ReviewReport]:
        drafts = await draft_all(provider, TID, plan, concurrency=2, max_tokens=800)
        return await review_and_revise(
            provider,
            TID,
            tdd,
            plan,
            drafts,
            render,
            max_revisions=max_revisions,
            llm=llm,
            max_tokens=800,
        )

    return plan, asyncio.run(go())


def test_only_the_failing_section_is_redrafted_once() -> None:
    provider = FakeProvider(responder=responder)
    plan, (drafts, report) = run_revise(provider, llm=False)
    drafted = [r.label for r in provider.requests]
    assert len(drafted) == len(TID.sections) + 1
    assert drafted.count("key_algorithms") == 2
    revise = provider.requests[-1]
    # The revision starts from the section's own messages, then its JSON, then the findings.
    assert revise.messages[:2] == plan.requests["key_algorithms"]
    assert revise.messages[2].role == "assistant"
    assert "[placeholder]" in revise.messages[3].content
    (revision,) = report.revisions
    assert revision.section == "key_algorithms"
    assert any("placeholder" in f for f in revision.findings_before)
    assert revision.findings_after == []
    assert revision.content_after is not None
    final = next(d for d in drafts if d.section_id == "key_algorithms")
    assert final.content["core_business_logic"]["code"] == FIXED
    assert report.errors() == []
    assert any("revised key_algorithms" in line for line in summary_lines(report))


def test_a_section_that_stays_broken_stops_after_max_revisions() -> None:
    def stubborn(request: Request) -> str:
        if request.label == "key_algorithms":
            return json.dumps(good_content("key_algorithms", BROKEN))
        return json.dumps(good_content(request.label))

    provider = FakeProvider(responder=stubborn)
    _, (_, report) = run_revise(provider, llm=False, max_revisions=2)
    assert [r.label for r in provider.requests].count("key_algorithms") == 3
    assert [r.round for r in report.revisions] == [1, 2]
    assert report.failing_sections() == {"key_algorithms"}
    assert report.revisions[-1].findings_after


def test_llm_review_skips_lint_failures_then_reviews_the_revised_section() -> None:
    provider = FakeProvider(responder=responder)
    _, (_, report) = run_revise(provider, llm=True)
    reviews = [r for r in provider.requests if r.prompt_id == "review_checklist"]
    # Round 0: 9 items asked in two batches (algorithms_detailed skipped: its lints failed);
    # after the revision, only the item about the revised section.
    first = [set(asked(r)) for r in reviews]
    assert [len(ids) for ids in first] == [5, 4, 1]
    assert "algorithms_detailed" not in first[0] | first[1]
    assert first[2] == {"algorithms_detailed"}
    assert {v.status for v in report.verdicts} == {"pass"}
    assert report.checklist_basis == "llm"
    assert report.scores["checklist_pass_rate"] == 1.0
    appendix = review_appendix(report)
    assert appendix.startswith("## Review") and "### Revisions" in appendix


def test_a_failed_verdict_sends_its_section_to_revision() -> None:
    def picky(request: Request) -> str:
        if request.prompt_id == "review_checklist":
            verdicts = [
                {
                    "id": i,
                    "reason": "no env var loader" if i == "configuration_secure" else "ok",
                    "passed": i != "configuration_secure",
                    "section": "configuration" if i == "configuration_secure" else "",
                }
                for i in asked(request)
            ]
            return json.dumps({"verdicts": verdicts})
        return json.dumps(good_content(request.label))

    provider = FakeProvider(responder=picky)
    _, (_, report) = run_revise(provider, llm=True)
    drafted = [r.label for r in provider.requests if r.prompt_id == "draft_section"]
    assert drafted.count("configuration") == 2
    assert len(drafted) == len(TID.sections) + 1
    revise = [r for r in provider.requests if len(r.messages) > 2]
    assert [r.label for r in revise] == ["configuration"]
    assert "[checklist configuration_secure]" in revise[0].messages[-1].content
    assert "no env var loader" in revise[0].messages[-1].content
    assert report.failing_sections() == {"configuration"}


def test_an_unusable_review_reply_twice_is_not_reviewed_not_passed() -> None:
    provider = FakeProvider(responder=lambda r: "not json at all")
    verdicts, calls = asyncio.run(
        llm_review(provider, TID, None, GOOD_TID, items=TID.checklist[:2], max_tokens=300)
    )
    assert [v.status for v in verdicts] == ["not_reviewed", "not_reviewed"]
    assert not any(v.passed for v in verdicts)
    assert [c.attempt for c in calls] == [1, 2]
    assert "Your previous reply could not be used" in provider.requests[1].messages[-1].content


def test_a_reply_missing_an_item_is_asked_again() -> None:
    one = {"id": "strategy_clear", "reason": "x", "passed": True, "section": ""}
    replies: list[str | Reply] = [json.dumps({"verdicts": [one]})]
    provider = FakeProvider(replies, responder=verdict_reply)
    verdicts, calls = asyncio.run(
        llm_review(provider, TID, None, GOOD_TID, items=TID.checklist[:2], max_tokens=300)
    )
    assert [c.ok for c in calls] == [False, True]
    assert [v.status for v in verdicts] == ["pass", "pass"]


# --- the review command ----------------------------------------------------------------


def test_review_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "001_FTID|Billing_Export.md"
    good.write_text(GOOD_TID, encoding="utf-8")
    report_path = tmp_path / "review.json"
    assert main(["review", str(good), "--tdd", str(TDD_PATH), "--json", str(report_path)]) == 0
    data = json.loads(report_path.read_text())
    assert data["template"] == "tid" and "5. Security" in data["orphans"]
    assert data["scores"]["sections_present"] == 1.0

    bad = tmp_path / "002_FTID|Broken.md"
    bad.write_text(with_block(GOOD_TID, "python", "def f(:\n  pass"), encoding="utf-8")
    assert main(["review", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "code.python-syntax" in out

    assert main(["review", str(tmp_path / "missing.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


def test_review_finds_the_linked_tdd_and_picks_spec_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "0xcc" / "specs"
    folder.mkdir(parents=True)
    tdds = tmp_path / "0xcc" / "tdds"
    tdds.mkdir()
    (tdds / TDD_PATH.name).write_text(TDD_PATH.read_text(), encoding="utf-8")
    doc = folder / "001_FSPEC|Billing_Export.md"
    doc.write_text(GOOD_SPEC, encoding="utf-8")
    out = tmp_path / "r.json"
    assert main(["review", str(doc), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["template"] == "spec"
    assert data["matrix"]  # the linked TDD was found and used


def test_review_with_llm_on_the_fake_model(tmp_path: Path) -> None:
    good = tmp_path / "001_FTID|Billing_Export.md"
    good.write_text(GOOD_TID, encoding="utf-8")
    out = tmp_path / "r.json"
    assert main(["review", str(good), "--llm", "-m", "fake", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    # Schema samples from the fake provider: every item gets a verdict.
    assert len(data["verdicts"]) == len(TID.checklist)
    assert data["checklist_basis"] == "llm"


def test_a_review_appendix_does_not_count_as_covering_the_tdd() -> None:
    from agent.review import review_appendix, review_markdown, strip_review_appendix

    template = get_template("tid")
    tdd = load_tdd(TDD_PATH)
    bare = "# A TID\n\n## 1. Implementation Strategy\n\nWe start somewhere.\n"
    before = asyncio.run(review_markdown(bare, template, tdd=tdd))
    with_appendix = bare + "\n" + review_appendix(before)
    assert strip_review_appendix(with_appendix) == bare
    after = asyncio.run(review_markdown(with_appendix, template, tdd=tdd))
    assert after.scores["tdd_coverage"] == before.scores["tdd_coverage"] < 1.0


def test_a_document_that_never_uses_the_tdd_names_gets_a_names_warning(tmp_path: Path) -> None:
    path = tmp_path / "tdd.md"
    path.write_text(
        "# Export\n\n## Design\n\n`ExportService` calls `RowWriter` in `export/writer.py`.\n"
        "`ExportJob` and `JobStore` track it.\n",
        encoding="utf-8",
    )
    tdd = load_tdd(path)
    template = get_template("tid")
    vague = run_lints("# Doc\n\nThe service writes rows.\n", template, tdd=tdd)
    warned = [f for f in vague.findings if f.id == "coverage.names"]
    assert len(warned) == 1 and warned[0].severity == "warning"
    assert "never names 5 of the TDD's 5" in warned[0].message
    assert "RowWriter" in warned[0].message and "writer.py" in warned[0].message
    # Four of five used: over the floor, no warning, and the count says which one is missing.
    close = run_lints(
        "# Doc\n\nExportService, RowWriter, writer.py and ExportJob.\n", template, tdd=tdd
    )
    assert not [f for f in close.findings if f.id == "coverage.names"]
    assert (close.names, close.unnamed) == (5, ["JobStore"])
