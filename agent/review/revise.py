"""Revision rounds: re-draft only the failing sections, with their findings, and re-review.

Imports core, document, providers, the draft stage and this package's report
and checklist modules; never the pipeline or a front end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable

from agent.core.errors import OutputValidationError
from agent.core.models import review_max_tokens as review_call_limit
from agent.core.records import CallRecord, Event, Progress, quiet
from agent.core.tdd import Tdd
from agent.core.templates import ChecklistItem, Template, section_heading
from agent.document.lints import Finding, LintResult, run_lints
from agent.draft.plan import DraftPlan, SectionDraft
from agent.draft.prompting import fill, load_prompt
from agent.draft.sections import draft_section
from agent.providers.base import Message, Provider
from agent.review.checklist import REVIEW_PROMPT, llm_review
from agent.review.report import (
    ReviewReport,
    Revision,
    Verdict,
    build_report,
    error_sections,
    failing_sections,
)

REVISE_PROMPT = "revise_section"
PROMPT_IDS = (REVIEW_PROMPT, REVISE_PROMPT)


def section_findings(
    section_id: str, findings: Iterable[Finding], verdicts: Iterable[Verdict]
) -> list[str]:
    """What is wrong with one section, as lines for the revise prompt and the report."""
    lines = [
        f"[{f.id}] {f.message}" + (f" (line {f.line})" if f.line else "")
        for f in findings
        if f.section == section_id and f.severity == "error"
    ]
    lines.extend(
        f"[checklist {v.item}] {v.text}: {v.reason}"
        for v in verdicts
        if v.section == section_id and v.status == "fail"
    )
    return lines


def revise_messages(
    template: Template, plan: DraftPlan, draft: SectionDraft, problems: list[str]
) -> list[Message]:
    """The section's original messages, its previous JSON, and the findings to fix."""
    section = template.section(draft.section_id)
    prompt = load_prompt(REVISE_PROMPT)
    user = fill(
        prompt.user,
        section_heading=section_heading(template, section),
        findings="\n".join(f"- {p}" for p in problems),
    )
    return [
        *plan.requests[section.id],
        Message(role="assistant", content=json.dumps(draft.content, ensure_ascii=False)),
        Message(role="user", content=user),
    ]


class Reviser:
    """One review-and-revise run: the current drafts, and the calls, verdicts and revisions."""

    def __init__(
        self,
        provider: Provider,
        template: Template,
        tdd: Tdd | None,
        plan: DraftPlan,
        drafts: list[SectionDraft],
        render: Callable[[list[SectionDraft]], str],
        *,
        max_tokens: int,
        review_tokens: int,
        codebase_versions: dict[str, str] | None,
        on_event: Progress,
    ) -> None:
        self.provider = provider
        self.template = template
        self.tdd = tdd
        self.plan = plan
        self.render = render
        self.max_tokens = max_tokens
        self.review_tokens = review_tokens
        self.codebase_versions = codebase_versions
        self.on_event = on_event
        self.current = {d.section_id: d for d in drafts}
        self.order = [d.section_id for d in drafts]
        self.calls: list[CallRecord] = []
        self.verdicts: list[Verdict] = []
        self.revisions: list[Revision] = []
        self.limit = asyncio.Semaphore(max(1, provider.max_concurrency))

    def drafts(self) -> list[SectionDraft]:
        return [self.current[k] for k in self.order]

    def lint(self) -> tuple[LintResult, str]:
        """The lints of the document as the current drafts render it, and that markdown."""
        markdown = self.render(self.drafts())
        result = run_lints(
            markdown,
            self.template,
            tdd=self.tdd,
            sections={k: d.content for k, d in self.current.items()},
            codebase_versions=self.codebase_versions,
        )
        return result, markdown

    async def review(
        self, markdown: str, skip: set[str], items: list[ChecklistItem] | None = None
    ) -> list[Verdict]:
        """The model's verdicts on `items` (all by default); its calls are kept."""
        verdicts, calls = await llm_review(
            self.provider,
            self.template,
            self.tdd,
            markdown,
            skip_sections=skip,
            items=items,
            max_tokens=self.review_tokens,
            on_event=self.on_event,
        )
        self.calls.extend(calls)
        return verdicts

    async def redraft(self, section_id: str, problems: list[str]) -> SectionDraft:
        async with self.limit:
            self.on_event(Event(kind="info", detail=f"revising {section_id}"))
            messages = revise_messages(self.template, self.plan, self.current[section_id], problems)
            return await draft_section(
                self.provider,
                self.template,
                self.template.section(section_id),
                messages,
                max_tokens=self.max_tokens,
                on_event=self.on_event,
                cites=self.plan.cites,
                facts=self.plan.facts(section_id),
            )

    def apply(
        self,
        round_no: int,
        section_id: str,
        problems: list[str],
        outcome: SectionDraft | BaseException,
    ) -> Revision:
        """The revision one re-draft made; a successful one replaces the section's draft."""
        before = self.current[section_id]
        revision = Revision(
            section=section_id,
            round=round_no,
            findings_before=problems,
            content_before=before.content,
        )
        if isinstance(outcome, OutputValidationError):
            self.calls.extend(getattr(outcome, "calls", []))
            revision.error = str(outcome)
            revision.findings_after = problems
            return revision
        if isinstance(outcome, BaseException):
            raise outcome
        version = load_prompt(REVISE_PROMPT).version
        new_calls = [
            c.model_copy(update={"prompt_id": REVISE_PROMPT, "prompt_version": version})
            for c in outcome.calls
        ]
        self.calls.extend(new_calls)
        self.current[section_id] = outcome.model_copy(update={"calls": [*before.calls, *new_calls]})
        revision.content_after = outcome.content
        return revision

    async def revise_round(
        self, round_no: int, to_fix: set[str], result: LintResult, llm: bool
    ) -> tuple[LintResult, set[str]]:
        """Re-draft `to_fix`, lint again, re-review what changed; the new lints and the revised."""
        problems = {s: section_findings(s, result.findings, self.verdicts) for s in sorted(to_fix)}
        ids = list(problems)
        outcomes = await asyncio.gather(
            *(self.redraft(s, problems[s]) for s in ids), return_exceptions=True
        )
        this_round = [
            self.apply(round_no, s, problems[s], outcome)
            for s, outcome in zip(ids, outcomes, strict=True)
        ]
        revised = {r.section for r in this_round if r.content_after is not None}
        result, markdown = self.lint()
        if llm and revised:
            items = [i for i in self.template.checklist if set(i.sections) & revised]
            if items:
                new = await self.review(markdown, error_sections(result.findings) & revised, items)
                by_item = {v.item: v for v in new}
                self.verdicts = [by_item.get(v.item, v) for v in self.verdicts]
        for revision in this_round:
            if revision.content_after is not None:
                revision.findings_after = section_findings(
                    revision.section, result.findings, self.verdicts
                )
        self.revisions.extend(this_round)
        return result, revised


async def review_and_revise(
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    plan: DraftPlan,
    drafts: list[SectionDraft],
    render: Callable[[list[SectionDraft]], str],
    *,
    max_revisions: int = 1,
    llm: bool = True,
    max_tokens: int,
    review_max_tokens: int | None = None,
    codebase_versions: dict[str, str] | None = None,
    on_event: Progress = quiet,
) -> tuple[list[SectionDraft], ReviewReport]:
    """Review the drafts, re-draft only failing sections, re-review those; bounded rounds.

    Returns the final drafts (revised ones replaced) and the report, whose
    `revisions` show each revised section's findings and content before and after.
    """
    reviser = Reviser(
        provider,
        template,
        tdd,
        plan,
        drafts,
        render,
        max_tokens=max_tokens,
        review_tokens=review_max_tokens or min(max_tokens, review_call_limit()),
        codebase_versions=codebase_versions,
        on_event=on_event,
    )
    result, markdown = reviser.lint()
    if llm and template.checklist:
        reviser.verdicts = await reviser.review(markdown, error_sections(result.findings))
    to_fix = failing_sections(result.findings, reviser.verdicts)
    to_fix &= set(plan.requests) & set(reviser.current)
    load_prompt(REVISE_PROMPT)  # a broken revise prompt fails here, before any re-draft
    for round_no in range(1, max_revisions + 1):
        if not to_fix:
            break
        result, revised = await reviser.revise_round(round_no, to_fix, result, llm)
        to_fix = failing_sections(result.findings, reviser.verdicts) & revised
    report = build_report(template, result, reviser.verdicts, reviser.calls, reviser.revisions)
    return reviser.drafts(), report
