"""`tidsmith check`: a document's concrete claims against a codebase.

claims (markdown-it-py; code blocks in `code_blocks`) → index (`index_python`
with ast, `index_typescript` with tree-sitter, `index_manifests`) → resolve
(found / new / drifted / missing) → report (text, JSON, SARIF 2.1.0); the values
they pass are in `model`. Makes no model call: imports agent.core and
agent.document only, never providers, draft, the stages or a front end.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from agent.check.claims import Claim, extract_claims
from agent.check.index import CodeIndex, build_index
from agent.check.resolve import Finding, Verdict, resolve
from agent.core.errors import InputError
from agent.core.tdd import load_tdd
from agent.document.lints import read_document


class CheckReport(BaseModel):
    """Every claim of the documents checked, with its verdict."""

    codebase: str
    documents: list[str]
    findings: list[Finding]
    unparsed: list[str] = Field(default_factory=list, description="codebase files not parsed")

    def count(self, verdict: Verdict) -> int:
        return sum(1 for f in self.findings if f.verdict == verdict)

    def counts(self) -> dict[str, int]:
        return {v: self.count(v) for v in ("found", "new", "drifted", "missing")}


def tdd_names(tdd_text: str) -> frozenset[str]:
    """The names a TDD gives in code (spans and blocks): what it designs."""
    return frozenset(c.value for c in extract_claims(tdd_text)) | frozenset(
        c.value.split("/")[-1] for c in extract_claims(tdd_text) if c.kind == "path"
    )


def check_markdown(
    markdown: str,
    index: CodeIndex,
    *,
    doc: str = "",
    planned: bool = False,
    designed: frozenset[str] = frozenset(),
) -> list[Finding]:
    claims = extract_claims(markdown, doc, frozenset(index.programs))
    return [resolve(c, index, planned=planned, tdd_names=designed) for c in claims]


def check_documents(
    docs: list[Path],
    codebase: Path,
    *,
    tdd: Path | None = None,
    planned: bool = False,
) -> CheckReport:
    """Check each document against `codebase`; `tdd` makes the names it designs `new`."""
    if not codebase.is_dir():
        raise InputError(f"--codebase {codebase} is not a folder; pass the codebase's root")
    texts = [(d, read_document(d)) for d in docs]
    designed = frozenset()
    if tdd is not None:
        designed = tdd_names(load_tdd(tdd).text)
    index = build_index(codebase)
    findings: list[Finding] = []
    for path, text in texts:
        findings += check_markdown(
            text, index, doc=path.as_posix(), planned=planned, designed=designed
        )
    return CheckReport(
        codebase=codebase.as_posix(),
        documents=[d.as_posix() for d in docs],
        findings=findings,
        unparsed=index.unparsed,
    )


__all__ = [
    "CheckReport",
    "Claim",
    "Finding",
    "build_index",
    "check_documents",
    "check_markdown",
    "extract_claims",
]
