"""Diagrams as data: Mermaid valid by construction, ASCII beside it, and the Mermaid lint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent import generate
from agent.core.diagram import (
    Component,
    Diagram,
    Edge,
    mermaid_errors,
    render_ascii,
    render_markdown,
    render_mermaid,
)
from agent.core.templates import Part, Section, get_template, section_model
from agent.document.assemble import render_part
from agent.document.lints import run_lints
from agent.providers.fake import sample_instance

MERMAID_DIR = Path(__file__).parent / "mermaid"

EXPORT = Diagram(
    components=[
        Component(name="ExportPanel (React)", responsibility="month and format picker"),
        Component(name="ExportService", responsibility="validates, queues the job"),
        Component(name="Celery worker", responsibility="pages invoices, writes files"),
        Component(name="PostgreSQL", responsibility="invoices and export rows"),
    ],
    edges=[
        Edge(source="ExportPanel (React)", target="ExportService", label="POST /api/v1/exports"),
        Edge(source="ExportService", target="Celery worker", label="enqueue export_id"),
        Edge(source="Celery worker", target="PostgreSQL", label="SELECT 5,000 rows"),
        Edge(source="ExportService", target="PostgreSQL", label='status = "queued"'),
    ],
)

# Names and labels a model might write that break hand-written Mermaid.
HOSTILE = Diagram(
    components=[
        Component(name='Queue "jobs" [Redis]', responsibility="x"),
        Component(name="end", responsibility="a node Mermaid reserves"),
        Component(name="a|b {c} (d) <e> #f; `g`", responsibility="y"),
        Component(name="graph", responsibility=""),
        Component(name="Line\nbreak\ttab", responsibility=""),
    ],
    edges=[
        Edge(source='Queue "jobs" [Redis]', target="end", label='-->|"x"| y'),
        Edge(source="end", target="a|b {c} (d) <e> #f; `g`", label="%% not a comment"),
        Edge(source="graph", target="Unlisted service", label=""),
        Edge(source="line break tab", target="graph", label="subgraph X"),
    ],
)

BROKEN = {
    "no header": "A --> B",
    "bad direction": "flowchart SIDEWAYS\n  A --> B",
    "unclosed bracket": "flowchart LR\n  A[Export --> B",
    "unclosed quote": 'flowchart LR\n  A["Export] --> B',
    "bracket in plain label": "flowchart LR\n  A[Export [v2]] --> B",
    "reserved id": "flowchart LR\n  end --> B",
    "unclosed edge label": "flowchart LR\n  A -->|calls B",
    "dangling arrow": "flowchart LR\n  A -->",
    "stray end": "flowchart LR\n  A --> B\n  end",
}
GOOD = {
    "ours": render_mermaid(EXPORT),
    "hostile": render_mermaid(HOSTILE),
    "hand-written": (
        "%% the export flow\nflowchart TD\n  A[Panel] -->|POST| B(Service)\n"
        "  B --> C[(PostgreSQL)]\n  B -.-> D{{Cache}}; D --- A\n"
        "  subgraph Workers\n    W1 & W2 --> C\n  end\n  A -- polls --> B\n"
        "  classDef hot fill:#f96\n  class B hot"
    ),
    "graph keyword": "graph LR\n  A --> B",
}


def test_mermaid_is_valid_by_construction() -> None:
    for name, text in GOOD.items():
        assert mermaid_errors(text) == [], name
    text = render_mermaid(HOSTILE)
    # Generated ids, and every label quoted with its specials as entity codes.
    assert text.splitlines()[0] == "flowchart LR"
    assert 'n1["Queue #quot;jobs#quot; #91;Redis#93;"]' in text
    assert 'n2["end"]' in text
    assert "Unlisted service" in text  # an edge to an unlisted component keeps it
    assert '\n    n5 -->|"subgraph X"| n4' in text  # names match across case and spacing


def test_ascii_draws_chains_as_down_arrows_and_lists_the_rest() -> None:
    art = render_ascii(EXPORT)
    assert art.splitlines()[:3] == [
        "┌─────────────────────┐",
        "│ ExportPanel (React) │  month and format picker",
        "└──────────┬──────────┘",
    ]
    assert "           │ POST /api/v1/exports\n           ▼" in art
    assert art.splitlines()[-1] == 'ExportService ──status = "queued"──► PostgreSQL'
    block = render_markdown(EXPORT)
    assert block.startswith("```mermaid\nflowchart LR\n") and "\n```\n\n```text\n┌" in block


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_lint_flags_broken_flowcharts(name: str) -> None:
    assert mermaid_errors(BROKEN[name]), name


def test_other_diagram_types_are_left_alone() -> None:
    assert mermaid_errors("sequenceDiagram\n  A->>B: hi") == []
    assert mermaid_errors("---\ntitle: x\n---\nflowchart LR\n  A --> B") == []


def test_review_reports_a_broken_mermaid_block_and_counts_good_ones() -> None:
    template = get_template("spec")
    doc = (
        "# Spec\n\n## TL;DR\n\nA pipeline.\n\n## 2. Architecture\n\n"
        f"```mermaid\n{render_mermaid(EXPORT)}\n```\n\n"
        "```mermaid\nflowchart LR\n  A[Export --> B\n```\n"
    )
    result = run_lints(doc, template)
    found = [f for f in result.findings if f.id == "code.mermaid-syntax"]
    assert len(found) == 1 and found[0].section == "architecture"
    assert found[0].line == doc.splitlines().index("```mermaid", 12) + 1
    assert (result.code_checked, result.code_ok) == (2, 1)


def test_a_diagram_part_is_drafted_as_bounded_data_and_rendered_by_code() -> None:
    part = Part(
        id="component_diagram",
        title="Component Diagram",
        kind="diagram",
        guidance="The main components and the data flow.",
        max_items=5,
        max_chars=600,
    )
    section = Section(id="architecture", title="Architecture", guidance="g", parts=[part])
    model = section_model(section)
    schema = model.model_json_schema()
    diagram_schema = schema["$defs"]["architecture_component_diagram_diagram"]
    assert diagram_schema["properties"]["components"]["maxItems"] == 5
    assert diagram_schema["properties"]["edges"]["maxItems"] == 6
    value = model.model_validate(sample_instance(schema)).model_dump()["component_diagram"]
    markdown = render_part(part, value)
    assert markdown.startswith("```mermaid\nflowchart LR\n")
    assert mermaid_errors(markdown.split("```")[1].removeprefix("mermaid\n")) == []


def _mermaid_parse(texts: list[str]) -> list[str | None]:
    """Mermaid's own parser (node + tests/mermaid), installed with npm ci on first use."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: Mermaid's own parser cannot run")
    if not (MERMAID_DIR / "node_modules" / "mermaid").is_dir():
        npm = shutil.which("npm")
        assert npm, "node without npm: install npm to run Mermaid's parser"
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=MERMAID_DIR, check=True
        )
    done = subprocess.run(
        [node, "check.mjs"],
        cwd=MERMAID_DIR,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_mermaids_own_parser_agrees() -> None:
    good = sorted(GOOD)
    broken = sorted(BROKEN)
    results = _mermaid_parse([GOOD[n] for n in good] + [BROKEN[n] for n in broken])
    assert dict(zip(good, results[: len(good)], strict=True)) == dict.fromkeys(good)
    rejected = dict(zip(broken, results[len(good) :], strict=True))
    assert all(rejected.values()), rejected


CASSETTES = Path(__file__).parent.parent / "cassettes"


def _mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)\n```$", markdown, re.S | re.M)


@pytest.mark.parametrize("template", ["tid", "spec"])
def test_built_in_templates_draw_their_diagrams_as_mermaid(template: str, tmp_path: Path) -> None:
    tdd = tmp_path / "001_FTDD|Export.md"
    tdd.write_text("# TDD: Export\n\n## 1. Flow\n\nPanel to service to database.\n")
    doc = generate(tdd, template=template, model="fake", write=False)
    blocks = _mermaid_blocks(doc.markdown)
    assert len(blocks) == 1
    assert mermaid_errors(blocks[0]) == []
    assert _mermaid_parse(blocks) == [None]


def test_every_diagram_in_the_recorded_documents_parses() -> None:
    """The cassettes' documents: each TID and Spec has a diagram, and Mermaid parses it."""
    blocks: list[str] = []
    for doc in sorted(CASSETTES.glob("*.md")):
        found = _mermaid_blocks(doc.read_text(encoding="utf-8"))
        assert found, f"{doc.name} has no mermaid diagram: re-record it (scripts/record-cassettes)"
        for block in found:
            assert mermaid_errors(block) == [], doc.name
        blocks.extend(found)
    assert _mermaid_parse(blocks) == [None] * len(blocks)
