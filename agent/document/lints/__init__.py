"""Lints: what code can check in a document exactly, with no model.

Sections present and in order, code that parses, placeholders, word caps,
pinned versions, TDD coverage, one module per family; `run_lints` runs them
all. Documents are read tolerantly: hand-written TIDs number their headings
differently or not at all, so a template section is found by its title
(number optional, case-insensitive, fuzzy), never by position. The package
imports `agent.core` only.
"""

from agent.document.lints.code import code_error, lint_code
from agent.document.lints.content import lint_markup, lint_placeholders
from agent.document.lints.coverage import coverage_matrix, tdd_topics
from agent.document.lints.dependencies import canonical_name, dependency_specs, lint_dependencies
from agent.document.lints.reading import (
    CodeBlock,
    DocSection,
    Finding,
    code_blocks,
    count_sentences,
    count_words,
    markdown_tables,
    norm_title,
    read_document,
    split_document,
)
from agent.document.lints.run import LintResult, lint_document, run_lints
from agent.document.lints.structure import lint_sections, lint_spec, lint_targets

__all__ = [
    "CodeBlock",
    "DocSection",
    "Finding",
    "LintResult",
    "canonical_name",
    "code_blocks",
    "code_error",
    "count_sentences",
    "count_words",
    "coverage_matrix",
    "dependency_specs",
    "lint_code",
    "lint_dependencies",
    "lint_document",
    "lint_markup",
    "lint_placeholders",
    "lint_sections",
    "lint_spec",
    "lint_targets",
    "markdown_tables",
    "norm_title",
    "read_document",
    "run_lints",
    "split_document",
    "tdd_topics",
]
