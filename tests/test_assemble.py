"""Assemble is pure code: known section models give known markdown."""

from __future__ import annotations

import pytest

from agent.core.templates import Part, Section, Template, get_template, section_model
from agent.document.assemble import DocumentHeader, RelatedDoc, assemble, render_part
from agent.providers.fake import sample_instance

HEADER = DocumentHeader(
    title="Technical Implementation Document: Billing Export",
    doc_id="001_FTID|Billing_Export",
    source_tdd="001_FTDD|Billing_Export",
    source_link="../tdds/001_FTDD|Billing_Export.md",
    template="mini",
    template_version="1.0",
    model="fake:fake",
    date="2026-01-02",
)


def mini_template(header: str = "tid") -> Template:
    return Template(
        name="mini",
        version="1.0",
        title="Mini",
        description="two sections",
        doc_title="Technical Implementation Document: {feature}",
        doc_kind="TID",
        header=header,  # type: ignore[arg-type]
        system="You write documents.",
        sections=[
            Section(
                id="overview",
                title="Overview",
                numbered=False,
                guidance="Say what it is.",
                parts=[Part(id="summary", title="Summary", kind="text", guidance="two sentences")],
            ),
            Section(
                id="structure",
                title="Code Structure",
                guidance="Tree and classes.",
                parts=[
                    Part(
                        id="tree",
                        title="Directory Structure",
                        kind="code",
                        language="text",
                        guidance="tree",
                    ),
                    Part(id="steps", title="Steps", kind="list", guidance="steps"),
                    Part(
                        id="targets",
                        title="Targets",
                        kind="table",
                        guidance="numbers",
                        columns=["Metric", "Target"],
                    ),
                ],
            ),
        ],
    )


CONTENTS = {
    "overview": {"summary": "Exports invoices.\n", "tdd_refs": []},
    "structure": {
        "tree": {"intro": "The package:", "path": "billing/", "code": "billing/\n  export.py"},
        "steps": ["Write the model", "Add  the\nendpoint"],
        "targets": [{"metric": "p95 | latency", "target": "200 ms"}],
        "tdd_refs": ["1. Architecture"],
    },
}


def test_known_sections_render_to_known_markdown() -> None:
    text = assemble(mini_template(), HEADER, CONTENTS)
    assert text == (
        "# Technical Implementation Document: Billing Export\n\n"
        "**Document ID:** 001_FTID|Billing_Export  \n"
        "**Source TDD:** [001_FTDD|Billing_Export](../tdds/001_FTDD|Billing_Export.md)  \n"
        "**Template:** mini 1.0  \n"
        "**Model:** fake:fake  \n"
        "**Date:** 2026-01-02\n\n"
        "---\n\n"
        "## Overview\n\n"
        "Exports invoices.\n\n"
        "## 1. Code Structure\n\n"
        "### Directory Structure\n\n"
        "The package:\n\nFile: `billing/`\n\n"
        "```text\nbilling/\n  export.py\n```\n\n"
        "### Steps\n\n"
        "- Write the model\n- Add the endpoint\n\n"
        "### Targets\n\n"
        "| Metric | Target |\n|---|---|\n| p95 \\| latency | 200 ms |\n"
    )


def test_code_containing_backticks_gets_a_longer_fence() -> None:
    part = Part(id="x", title="X", kind="code", language="markdown", guidance="g")
    out = render_part(part, {"intro": "", "path": "", "code": "Use:\n```python\nx = 1\n```"})
    assert out.startswith("````markdown\n")
    assert out.endswith("\n````")


def test_spec_header_and_related_documents() -> None:
    text = assemble(
        mini_template("spec"),
        HEADER.model_copy(update={"title": "Technical Implementation Spec: Billing Export"}),
        CONTENTS,
        [RelatedDoc(text="001_FPRD|Billing_Export", target="../prds/001_FPRD|Billing_Export.md")],
    )
    assert "> **Status**: Draft" in text
    assert "> **Version**: 1.0 | **Updated**: 2026-01-02" in text
    assert text.rstrip().endswith(
        "## Related Documents\n\n"
        "- [001_FTDD|Billing_Export](../tdds/001_FTDD|Billing_Export.md) (source TDD)\n"
        "- [001_FPRD|Billing_Export](../prds/001_FPRD|Billing_Export.md)"
    )


def test_missing_section_content_is_an_error() -> None:
    with pytest.raises(ValueError, match="structure"):
        assemble(mini_template(), HEADER, {"overview": CONTENTS["overview"]})


def test_a_fence_the_model_put_around_its_code_is_removed() -> None:
    part = Part(id="x", title="X", kind="code", language="python", guidance="g")
    out = render_part(part, {"intro": "", "path": "", "code": "```python\nx = 1\n```"})
    assert out == "```python\nx = 1\n```"
    cut = render_part(part, {"intro": "", "path": "", "code": "```python\nx = 1\ny = ("})
    assert cut == "```python\nx = 1\ny = (\n```"


def test_appendices_follow_the_sections_in_order() -> None:
    template = get_template("tid")
    contents = {
        s.id: sample_instance(section_model(s).model_json_schema()) for s in template.sections
    }
    doc = assemble(
        template,
        HEADER,
        contents,
        appendices=["## References\n\n- [R1] a PRD\n", "  ", "## Review\n\nall passed"],
    )
    last_section = f"## {len(template.sections)}. {template.sections[-1].title}"
    assert doc.index(last_section) < doc.index("## References") < doc.index("## Review")
    assert doc.endswith("all passed\n")
    assert "\n\n\n" not in doc


def test_a_list_that_is_only_not_applicable_reads_as_a_sentence() -> None:
    from agent.core.templates import get_template
    from agent.document.assemble import render_part

    part = get_template("spec").section("cli_specification").parts[0]
    assert part.kind == "list"
    said = "Not applicable: the TDD defines no command-line interface."
    assert render_part(part, [said]) == said
    assert render_part(part, ["`relay serve`: runs the API.", said]).startswith("- `relay serve`")
