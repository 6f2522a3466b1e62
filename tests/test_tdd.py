"""Loading, validating and parsing a TDD; choosing excerpts for small models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent.core.errors import InputError
from agent.core.tdd import (
    MAX_BYTES,
    Tdd,
    excerpt,
    link_kind,
    load_tdd,
    names_for,
    parse_headings,
    tdd_files,
    tdd_names,
)
from agent.core.tokens import count_tokens

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
# The shared corpus sits beside the checkout on the team's machines; tests skip without it.
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "mistudio" / "0xcc" / "tdds"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_the_fixture() -> None:
    tdd = load_tdd(FIXTURE)

    assert tdd.path == str(FIXTURE)
    assert tdd.title == "Billing Export"
    assert tdd.doc_id == "001_FTDD|Billing_Export"
    assert tdd.feature == "Billing Export"
    assert tdd.feature_slug == "Billing_Export"
    assert tdd.number == "001"
    assert tdd.sha256 == hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    assert tdd.text == FIXTURE.read_text(encoding="utf-8")


def test_headings_skip_code_blocks_and_carry_their_own_body() -> None:
    tdd = load_tdd(FIXTURE)
    titles = [h.title for h in tdd.headings]

    assert titles[:4] == [
        "Technical Design Document: Billing Export",
        "1. System Architecture",
        "1.1 Component Overview",
        "1.2 Export Flow",
    ]
    assert not any("not a heading" in t for t in titles)
    assert [h.level for h in tdd.headings[:3]] == [1, 2, 3]
    for heading, following in zip(tdd.headings, tdd.headings[1:], strict=False):
        assert tdd.text[heading.start :].startswith(heading.text)
        assert heading.start + len(heading.text) == following.start
    overview = tdd.headings[2]
    assert overview.text.startswith("### 1.1 Component Overview\n")
    assert "# not a heading" in overview.text
    assert "1.2 Export Flow" not in overview.text
    last = tdd.headings[-1]
    assert last.start + len(last.text) == len(tdd.text)


def test_links_are_classified_by_file_name() -> None:
    tdd = load_tdd(FIXTURE)

    assert [(link.kind, link.target) for link in tdd.links] == [
        ("prd", "../prds/001_FPRD|Billing_Export.md"),
        ("adr", "../adrs/000_PADR|Platform.md"),
        ("other", "../tasks/001_FTASKS|Billing_Export.md"),
        ("tid", "../tids/001_FTID|Billing_Export.md"),
    ]
    assert tdd.links[0].text == "001_FPRD|Billing_Export"


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("../prds/002_FPRD|Model_Management.md", "prd"),
        ("../prds/000_PPRD|miStudio.md", "prd"),
        ("PRD.md", "prd"),
        ("../adrs/000_PADR|miStudio.md", "adr"),
        ("docs/ADR-0007-queues.md#decision", "adr"),
        ("../tdds/003_FTDD|SAE_Training.md", "tdd"),
        ("../tids/002_FTID|Model_Management.md", "tid"),
        ("../prds/overview.md", "prd"),
        ("../tasks/001_FTASKS|Dataset_Management.md", "other"),
        ("https://example.com/guide", "other"),
        ("#section-2", "other"),
        ("../readme.md", "other"),
    ],
)
def test_link_kind(target: str, kind: str) -> None:
    assert link_kind(target) == kind


def test_links_in_code_and_images_are_ignored(tmp_path: Path) -> None:
    text = (
        "# T\n\n![diagram](../prds/diagram_PRD.png)\n\n"
        '```\n[PRD](../prds/001_FPRD|X.md)\n```\n\n[spec](<../adrs/001 ADR.md> "title")\n'
    )

    tdd = load_tdd(_write(tmp_path, "x.md", text))

    assert [(link.target, link.kind) for link in tdd.links] == [("../adrs/001 ADR.md", "adr")]


def test_a_repeated_target_is_listed_once(tmp_path: Path) -> None:
    text = "# T\n\n[A](../prds/001_FPRD|X.md) and [PRD](../prds/001_FPRD|X.md)\n"

    tdd = load_tdd(_write(tmp_path, "x.md", text))

    assert [link.text for link in tdd.links] == ["A"]


# --- bad input: one line, exit code 2, says what to do --------------------------------------


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    cases: dict[str, tuple[Path, str]] = {
        "missing": (tmp_path / "nope.md", "no such file"),
        "folder": (tmp_path, "folder"),
    }
    for name, data, hint in [
        ("empty", b"", "empty"),
        ("whitespace", b"  \n\t\n  ", "empty"),
        ("binary", b"# Title\n\x00\x01\x02", "binary"),
        ("latin1", "# Titel: Größe\n".encode("latin-1"), "UTF-8"),
        ("huge", b"# T\n" + b"x" * MAX_BYTES, "2 MB"),
        ("no-headings", b"Just prose.\nNo headings at all.\n", "headings"),
        (
            "headings-only-in-code",
            b"```\n# not a heading\n```\n~~~\n## nor this\n~~~\n",
            "headings",
        ),
        ("indented-code", b"    # indented code, not a heading\n", "headings"),
    ]:
        path = tmp_path / f"{name}.md"
        path.write_bytes(data)
        cases[name] = (path, hint)
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "folder",
        "empty",
        "whitespace",
        "binary",
        "latin1",
        "huge",
        "no-headings",
        "headings-only-in-code",
        "indented-code",
    ],
)
def test_bad_input_is_a_one_line_input_error(tmp_path: Path, case: str) -> None:
    path, hint = _bad_inputs(tmp_path)[case]

    with pytest.raises(InputError) as info:
        load_tdd(path)

    message = str(info.value)
    assert hint in message
    assert "\n" not in message
    assert ";" in message  # the part after it says what to do
    assert info.value.exit_code == 2


def test_exactly_the_size_limit_is_accepted(tmp_path: Path) -> None:
    head = b"# T\n"
    path = tmp_path / "big.md"
    path.write_bytes(head + b"x" * (MAX_BYTES - len(head)))

    assert load_tdd(path).title == "T"


def test_bom_and_crlf_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_bytes("\ufeff# Title\r\n\r\n## Part\r\nbody\r\n".encode())

    tdd = load_tdd(path)

    assert tdd.text == "# Title\n\n## Part\nbody\n"
    assert [h.title for h in tdd.headings] == ["Title", "Part"]
    assert tdd.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- file name, document id, title --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "feature", "slug", "number"),
    [
        ("002_FTDD|Model_Management.md", "Model Management", "Model_Management", "002"),
        ("002_FTDD_Model_Management.md", "Model Management", "Model_Management", "002"),
        ("002-FTDD-Model_Management.md", "Model Management", "Model_Management", "002"),
        (
            "009_FTDD|Multi_GPU_Scalability.md",
            "Multi GPU Scalability",
            "Multi_GPU_Scalability",
            "009",
        ),
        ("000_PTDD|miStudio.md", "miStudio", "miStudio", "000"),
        ("FTDD|Model_Management.md", "Model Management", "Model_Management", None),
        ("billing-export.md", "Billing Export", "Billing_Export", None),
        ("012_sae_training.md", "Sae Training", "Sae_Training", "012"),
        ("SAE training.md", "SAE Training", "SAE_Training", None),
    ],
)
def test_feature_from_file_name(
    tmp_path: Path, name: str, feature: str, slug: str, number: str | None
) -> None:
    tdd = load_tdd(_write(tmp_path, name, "# Something Else Entirely\n\n## A\n"))

    assert (tdd.feature, tdd.feature_slug, tdd.number) == (feature, slug, number)


def test_feature_from_doc_id_when_the_file_name_is_generic(tmp_path: Path) -> None:
    text = "# Technical Design Document: Whatever\n\n**Document ID:** 004_FTDD|Feature_Discovery\n"

    tdd = load_tdd(_write(tmp_path, "tdd.md", text))

    assert tdd.doc_id == "004_FTDD|Feature_Discovery"
    assert (tdd.feature, tdd.feature_slug, tdd.number) == (
        "Feature Discovery",
        "Feature_Discovery",
        "004",
    )


def test_feature_from_title_when_nothing_else_names_it(tmp_path: Path) -> None:
    tdd = load_tdd(_write(tmp_path, "design.md", "# Technical Design Document: Usage Metering\n"))

    assert tdd.title == "Usage Metering"
    assert tdd.doc_id == "design"
    assert (tdd.feature, tdd.feature_slug, tdd.number) == ("Usage Metering", "Usage_Metering", None)


def test_untitled_when_the_title_has_no_words(tmp_path: Path) -> None:
    tdd = load_tdd(_write(tmp_path, "tdd.md", "# ???\n"))

    assert tdd.feature_slug == "Untitled"


def test_title_falls_back_to_the_first_heading(tmp_path: Path) -> None:
    tdd = load_tdd(_write(tmp_path, "x.md", "intro\n\n## Overview\n\n### Detail\n"))

    assert tdd.title == "Overview"


def test_closing_hashes_and_unicode_titles(tmp_path: Path) -> None:
    tdd = load_tdd(_write(tmp_path, "x.md", "# Datenexport für Größen ##\n\n##\n\n#hashtag\n"))

    assert [(h.title, h.level) for h in tdd.headings] == [("Datenexport für Größen", 1), ("", 2)]
    assert tdd.title == "Datenexport für Größen"


def test_setext_headings(tmp_path: Path) -> None:
    text = "Billing Export\n==============\n\nIntro.\n\nStorage\n-------\n\n- a list item\n---\n"

    tdd = load_tdd(_write(tmp_path, "x.md", text))

    assert [(h.title, h.level) for h in tdd.headings] == [("Billing Export", 1), ("Storage", 2)]
    assert tdd.headings[1].text.startswith("Storage\n-------\n")


def test_fences_close_only_on_a_matching_fence() -> None:
    text = "# A\n````\n```\n# in code\n```\n````\n## B\n~~~\n# open to the end\n"

    assert [h.title for h in parse_headings(text)] == ["A", "B"]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_real_corpus_tdds_load() -> None:
    for path in sorted(CORPUS.glob("*.md")):
        tdd = load_tdd(path)
        assert tdd.number and tdd.number == path.name[:3]
        assert tdd.doc_id == path.stem
        assert tdd.feature_slug == path.stem.split("|", 1)[1]
        assert any(link.kind == "prd" for link in tdd.links)
    model = load_tdd(CORPUS / "002_FTDD|Model_Management.md")
    assert model.title == "Model Management"
    assert model.feature == "Model Management"
    assert "1.1 Component Overview" in [h.title for h in model.headings]


# --- excerpt --------------------------------------------------------------------------------


def test_excerpt_returns_the_whole_text_when_it_fits() -> None:
    tdd = load_tdd(FIXTURE)

    assert excerpt(tdd, "anything", count_tokens(tdd.text)) == tdd.text


def test_excerpt_keeps_the_header_and_the_relevant_section_within_budget() -> None:
    tdd = load_tdd(FIXTURE)
    header_tokens = count_tokens(tdd.text[: tdd.text.index("## 1.")])
    budget = header_tokens + 80

    text = excerpt(tdd, "Performance: rows per second and memory limits", budget)

    assert count_tokens(text) <= budget
    assert text.startswith("# Technical Design Document: Billing Export\n")
    assert "**Related PRD:**" in text
    assert "## 4. Performance" in text
    assert "60 seconds" in text
    assert "## 5. Security" not in text


def test_excerpt_keeps_document_order_and_parent_headings() -> None:
    tdd = load_tdd(FIXTURE)
    header_tokens = count_tokens(tdd.text[: tdd.text.index("## 1.")])
    budget = header_tokens + 220

    text = excerpt(tdd, "testing strategy integration test; export entity columns", budget)

    assert count_tokens(text) <= budget
    assert "## 7. Testing Strategy" in text
    assert "### 2.1 Export Entity" in text
    # The subsection comes with its parent's heading line so the structure reads right.
    assert "## 2. Database Schema" in text
    positions = [text.index(s) for s in ("**Document ID:**", "## 2. Database", "### 2.1", "## 7.")]
    assert positions == sorted(positions)


def test_excerpt_budget_holds_for_every_size() -> None:
    tdd = load_tdd(FIXTURE)
    total = count_tokens(tdd.text)

    for budget in range(1, total + 1, 7):
        text = excerpt(tdd, "worker retries and error handling", budget)
        assert count_tokens(text) <= budget


def test_excerpt_truncates_the_header_when_only_it_fits() -> None:
    tdd = load_tdd(FIXTURE)

    text = excerpt(tdd, "performance", 10)

    assert count_tokens(text) <= 10
    assert tdd.text.startswith(text)


def test_excerpt_without_a_title_heading(tmp_path: Path) -> None:
    body = "word " * 200
    tdd = load_tdd(
        _write(
            tmp_path, "x.md", f"## Alpha\n{body}\n## Beta\nqueues and workers\n## Gamma\n{body}\n"
        )
    )

    text = excerpt(tdd, "workers", 30)

    assert text.startswith("## Beta")
    assert count_tokens(text) <= 30


def test_excerpt_rejects_a_zero_budget() -> None:
    tdd = Tdd.model_validate(load_tdd(FIXTURE).model_dump())

    with pytest.raises(ValueError, match="budget_tokens"):
        excerpt(tdd, "x", 0)


def test_excerpt_with_no_matching_words_fills_in_document_order() -> None:
    tdd = load_tdd(FIXTURE)
    header_tokens = count_tokens(tdd.text[: tdd.text.index("## 1.")])
    budget = header_tokens + 120

    text = excerpt(tdd, "zebra xylophone", budget)

    assert count_tokens(text) <= budget
    assert "## 1. System Architecture" in text
    assert "## 7. Testing Strategy" not in text


def test_tdd_names_are_its_camel_case_names_and_source_files_in_order() -> None:
    text = (
        "# Export\n\nThe `ExportService` writes rows through `RowWriter`.\n\n"
        "Files: `billing/export/service.py`, `web/ExportPanel.tsx`, `ExportService` again,\n"
        "and README.md (not source) and plain Words.\n"
    )
    assert tdd_names(text) == [
        "ExportService",
        "RowWriter",
        "service.py",
        "ExportPanel.tsx",
        "ExportPanel",
    ]


def test_names_for_a_section_come_from_the_tdd_parts_that_match_it_first(tmp_path: Path) -> None:
    path = tmp_path / "tdd.md"
    path.write_text(
        "# Design\n\n## Storage\n\nThe `LedgerStore` keeps rows in `store.py`.\n\n"
        "## Retries\n\nThe `RetryPolicy` backs off; `ClockSource` times it.\n",
        encoding="utf-8",
    )
    tdd = load_tdd(path)
    assert names_for(tdd, "how retries back off", 2) == ["RetryPolicy", "ClockSource"]
    # With room to spare, the parts that do not match follow, in document order.
    assert names_for(tdd, "how retries back off", 10) == [
        "RetryPolicy",
        "ClockSource",
        "LedgerStore",
        "store.py",
    ]
    assert names_for(tdd, "storage", 1) == ["LedgerStore"]


def test_names_for_give_files_their_tdd_path_and_list_routes(tmp_path: Path) -> None:
    path = tmp_path / "tdd.md"
    path.write_text(
        "# Design\n\n## Components\n\n"
        "- `relay/delivery/service.py` (`DeliveryService`), `worker.py`, `retry.py`\n"
        "- `relay/main.py`; `util.py` is in `a/util.py` and `b/util.py`\n\n"
        "## API\n\n| POST | `/api/v1/events` | publish |\n| GET | `/api/v1/a` | a |\n"
        "| GET | `/api/v1/b` | b |\n| GET | `/api/v1/c` | c |\n| DELETE | `/api/v1/d` | d |\n\n"
        "## Worker\n\nThe worker in `worker.py` sends `POST /hooks` to each endpoint.\n",
        encoding="utf-8",
    )
    tdd = load_tdd(path)
    names = names_for(tdd, "components", 20)
    # Bare names after a path on its line live in its folder, everywhere they appear;
    # a name two paths share stays bare.
    assert names[:4] == [
        "relay/delivery/service.py",
        "DeliveryService",
        "relay/delivery/worker.py",
        "relay/delivery/retry.py",
    ]
    assert "util.py" in names and "a/util.py" in names and "relay/util.py" not in names
    # Routes are names, at most four to an ask: a table of them would crowd out the rest.
    routes = [n for n in names_for(tdd, "api", 20) if n.split(" ")[0] in {"GET", "POST", "DELETE"}]
    assert routes == ["POST /api/v1/events", "GET /api/v1/a", "GET /api/v1/b", "GET /api/v1/c"]
    assert names_for(tdd, "worker sends", 2) == ["relay/delivery/worker.py", "POST /hooks"]


def test_tdd_files_have_their_paths_and_what_the_tdd_says_they_hold() -> None:
    text = (
        "- `relay/main.py` (`create_app()`), `relay/models.py` (`Endpoint`, `Delivery`), "
        "`relay/db.py`\n"
        "- `relay/api/endpoints.py`, `relay/api/events.py` — routes\n"
        "- `relay/delivery/service.py` (`DeliveryService`), `worker.py` (`WorkerSettings`)\n"
        "Later, `worker.py` runs the jobs.\n"
    )
    assert tdd_files(text) == [
        ("relay/main.py", "create_app()"),
        ("relay/models.py", "Endpoint, Delivery"),
        ("relay/db.py", ""),
        ("relay/api/endpoints.py", "routes"),
        ("relay/api/events.py", "routes"),
        ("relay/delivery/service.py", "DeliveryService"),
        ("relay/delivery/worker.py", "WorkerSettings"),
    ]
    # A name with no path anywhere in the TDD is no file of a tree.
    assert tdd_files("The `worker.py` module.") == []
