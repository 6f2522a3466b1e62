"""The review stage: checklist verdicts, targeted revision, and the report.

Code checks what code can check exactly (`agent.document.lints`). The model is
asked only about the checklist items that need judgement, and only for
sections whose lints passed. Revision re-drafts only the failing sections, with
the findings in the prompt, a bounded number of rounds. Imports core, document,
providers and the draft stage; never the pipeline or a front end.

    report.py     records (Verdict, Revision, ReviewReport), lint verdicts, scores
    checklist.py  the model's checklist review, in batches
    revise.py     revision rounds (review_and_revise)
    document.py   reviewing a document on disk (review_markdown, its TDD, its sections)
    appendix.py   summary lines and the Review appendix
"""

from agent.review.appendix import review_appendix, strip_review_appendix, summary_lines
from agent.review.checklist import BATCH_SIZE, REVIEW_PROMPT, llm_review
from agent.review.document import find_tdd_for, load_sections_json, review_markdown
from agent.review.report import (
    ReviewMode,
    ReviewReport,
    Revision,
    Verdict,
    VerdictStatus,
    build_report,
    lint_checklist,
)
from agent.review.revise import (
    PROMPT_IDS,
    REVISE_PROMPT,
    review_and_revise,
    revise_messages,
    section_findings,
)

__all__ = [
    "BATCH_SIZE",
    "PROMPT_IDS",
    "REVIEW_PROMPT",
    "REVISE_PROMPT",
    "ReviewMode",
    "ReviewReport",
    "Revision",
    "Verdict",
    "VerdictStatus",
    "build_report",
    "find_tdd_for",
    "lint_checklist",
    "llm_review",
    "load_sections_json",
    "review_and_revise",
    "review_appendix",
    "review_markdown",
    "revise_messages",
    "section_findings",
    "strip_review_appendix",
    "summary_lines",
]
