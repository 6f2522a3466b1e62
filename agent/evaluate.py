"""Evaluate: review documents over a corpus laid out like `0xcc/` and score them.

A corpus has `tdds/NNN_FTDD|Name.md` and reference documents in
`tids/NNN_FTID|Name.md` (or `specs/` for the spec template), paired by their
number. For each pair the evaluated document is, in order of preference: one
generated now (`--generate`), ours found in `--docs DIR` by the same naming
convention, or else the reference itself (a lint-only check of the corpus).

Entity recall asks how much of what the reference names ours names too. The
entities are found by regular expressions, so the numbers are comparable
between runs rather than exact:

- paths: `dir/file.ext` with a known source extension; one of ours counts when
  its file name appears in ours (trees are often rooted differently);
- classes: `class X` / `interface X`; functions: `def f` / `function f`
  (dunder methods left out); both count when the name appears as a word;
- packages: third-party modules imported in Python (`import x`, `from x import`,
  standard library and the project's own top-level folders left out), npm
  packages imported in TypeScript (`from "pkg"`), and names in requirement pins;
  they count when the name appears as a word, case-insensitively;
- versions: `name==1.2.3`-style pins (also `>=`, `~=`); they count when ours
  has the same name followed by the same version within 30 characters.

A front end: it imports the pipeline, the review stage and the providers,
never the cli or another front end (chat, mcp_server, runnable).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.core.errors import InputError, TidsmithError
from agent.core.models import review_max_tokens
from agent.core.paths import default_output_path
from agent.core.records import Progress
from agent.core.settings import Settings
from agent.core.tdd import Tdd, load_tdd
from agent.core.templates import Template
from agent.document.lints import canonical_name, read_document
from agent.pipeline.generate import run_generate
from agent.providers import (
    DEFAULT_MAX_TOKENS,
    open_configured,
    provider_default_max_tokens,
)
from agent.providers.base import Provider
from agent.review import ReviewReport, load_sections_json, review_markdown

EntityKind = Literal["paths", "classes", "functions", "packages", "versions"]
KINDS: tuple[EntityKind, ...] = ("paths", "classes", "functions", "packages", "versions")

_EXT = r"(?:py|pyi|ts|tsx|js|jsx|json|ya?ml|toml|md|txt|sh|sql|cfg|ini|css|html)"
_PATH = re.compile(rf"(?<![\w/.@-])((?:[\w.-]+/)+[\w.-]+\.{_EXT})(?![\w/])")
_CLASS = re.compile(r"\b(?:class|interface)\s+([A-Z][A-Za-z0-9_]+)")
_FUNC = re.compile(r"\b(?:def|function)\s+([A-Za-z_][A-Za-z0-9_]*)")
_PY_IMPORT = re.compile(
    r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([A-Za-z_]\w*))", re.M
)
_TS_IMPORT = re.compile(r"""\bfrom\s+['"]((?:@[\w.-]+/)?[\w.-]+)[^'"]*['"]""")
_PIN = re.compile(r"(?<![\w.-])([A-Za-z][\w.-]*?)\s*(?:==|>=|~=)\s*v?(\d+(?:\.\d+)+)")


class Entities(BaseModel):
    """What a document names, by kind."""

    paths: list[str] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)
    functions: list[str] = Field(default_factory=list)
    packages: list[str] = Field(default_factory=list)
    versions: list[str] = Field(default_factory=list, description='"name version" pairs')

    def of(self, kind: EntityKind) -> list[str]:
        return list(getattr(self, kind))


def extract_entities(markdown: str) -> Entities:
    """Paths, class and function names, packages and pinned versions a document names."""
    paths = set(_PATH.findall(markdown))
    project_dirs = {p.split("/")[0] for p in paths} | {"src", "app", "backend", "frontend", "tests"}
    packages: set[str] = set()
    for match in _PY_IMPORT.finditer(markdown):
        name = match.group(1) or match.group(2)
        if (
            name not in sys.stdlib_module_names
            and name not in project_dirs
            and name != "__future__"
        ):
            packages.add(name)
    packages |= set(_TS_IMPORT.findall(markdown))
    versions: set[str] = set()
    for name, version in _PIN.findall(markdown):
        packages.add(name)
        versions.add(f"{name} {version}")
    return Entities(
        paths=sorted(paths),
        classes=sorted(set(_CLASS.findall(markdown))),
        functions=sorted(
            {f for f in _FUNC.findall(markdown) if not (f.startswith("__") and f.endswith("__"))}
        ),
        packages=sorted(packages),
        versions=sorted(versions),
    )


def _named(kind: EntityKind, entity: str, text: str, lower: str) -> bool:
    """Whether `text` (and its lower-cased copy) names one reference entity."""
    if kind == "paths":
        name = entity.rsplit("/", 1)[-1]
        return (
            entity in text or re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w])", text) is not None
        )
    if kind in {"classes", "functions"}:
        return re.search(rf"\b{re.escape(entity)}\b", text) is not None
    if kind == "packages":
        forms = {entity.lower(), canonical_name(entity), entity.lower().replace("-", "_")}
        return any(re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", lower) for f in forms)
    name, version = entity.rsplit(" ", 1)
    pattern = (
        rf"(?<![\w-]){re.escape(name.lower())}[^\n]{{0,30}}?(?<![\d.]){re.escape(version)}(?![\d])"
    )
    return re.search(pattern, lower) is not None


class Recall(BaseModel):
    found: int
    total: int
    missing: list[str] = Field(default_factory=list, description="up to 12, for a look")

    @property
    def rate(self) -> float | None:
        return round(self.found / self.total, 3) if self.total else None


def entity_recall(reference: str, ours: str) -> dict[EntityKind, Recall]:
    """For each kind, how many of the reference's entities ours names too."""
    wanted = extract_entities(reference)
    lower = ours.lower()
    result: dict[EntityKind, Recall] = {}
    for kind in KINDS:
        entities = wanted.of(kind)
        missing = [e for e in entities if not _named(kind, e, ours, lower)]
        result[kind] = Recall(
            found=len(entities) - len(missing), total=len(entities), missing=missing[:12]
        )
    return result


Source = Literal["generated", "docs", "reference"]


class EvalRow(BaseModel):
    """One TDD and the document evaluated for it."""

    number: str
    tdd: str
    reference: str | None
    document: str | None
    source: Source
    sections_present: float | None = None
    sections: str = ""
    code_blocks_parse: float | None = None
    code_blocks: str = ""
    lint_errors: int = 0
    lint_warnings: int = 0
    checklist_pass_rate: float | None = None
    checklist_basis: str = ""
    tdd_coverage: float | None = None
    entity_recall: float | None = None
    recall: dict[str, Recall] = Field(default_factory=dict)
    failed_lints: list[str] = Field(default_factory=list)
    error: str = ""


class EvalReport(BaseModel):
    corpus: str
    template: str
    source: Source
    rows: list[EvalRow]
    totals: dict[str, float | None]


def _number(path: Path) -> str | None:
    match = re.match(r"^(\d+)", path.name)
    return match.group(1).zfill(3) if match else None


def find_pairs(corpus: Path, template: Template) -> list[tuple[str, Path, Path | None]]:
    """(number, TDD, reference document or None) for every numbered TDD in the corpus."""
    tdds = corpus / "tdds"
    if not tdds.is_dir():
        raise InputError(f"{corpus} has no tdds/ folder; pass a folder laid out like 0xcc/")
    kind = template.doc_kind.upper()
    references = corpus / f"{kind.lower()}s"
    pairs: list[tuple[str, Path, Path | None]] = []
    for tdd in sorted(tdds.glob("*.md")):
        number = _number(tdd)
        if number is None:
            continue
        pairs.append((number, tdd, _find_doc(references, number, kind)))
    if not pairs:
        raise InputError(f"{tdds} has no numbered TDDs (NNN_FTDD|Name.md)")
    return pairs


def _find_doc(folder: Path, number: str, kind: str) -> Path | None:
    """`NNN_FTID|Name.md` (or its safe-name form `NNN_FTID_Name.md`) in a folder."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob(f"{number}*.md")):
        if _number(path) == number and re.search(rf"(?:^|[\W_])[FP]?{kind}(?:[\W_]|$)", path.stem):
            return path
    return None


def score_document(
    row: EvalRow,
    report: ReviewReport,
    markdown: str,
    reference_text: str | None,
) -> EvalRow:
    """Fill a row from a review report and, when there is a reference, entity recall."""
    s = report.scores
    c = report.counts
    errors = report.errors()
    update: dict[str, Any] = {
        "sections_present": s["sections_present"],
        "sections": f"{c['sections_found']}/{c['sections_total']}",
        "code_blocks_parse": s["code_blocks_parse"],
        "code_blocks": f"{c['code_blocks_ok']}/{c['code_blocks_checked']}",
        "lint_errors": len(errors),
        "lint_warnings": len(report.lints) - len(errors),
        "checklist_pass_rate": s["checklist_pass_rate"],
        "checklist_basis": report.checklist_basis,
        "tdd_coverage": s.get("tdd_coverage"),
        "failed_lints": sorted({f.id for f in errors}),
    }
    if reference_text is not None and row.source != "reference":
        recall = entity_recall(reference_text, markdown)
        found_all = sum(r.found for r in recall.values())
        total_all = sum(r.total for r in recall.values())
        update["recall"] = recall
        update["entity_recall"] = round(found_all / total_all, 3) if total_all else None
    return row.model_copy(update=update)


async def run_eval(
    corpus: Path,
    template: Template,
    *,
    settings: Settings,
    docs: Path | None = None,
    generate: bool = False,
    force: bool = False,
    llm: bool = False,
    provider: Provider | None = None,
    on_event: Progress | None = None,
) -> EvalReport:
    """Review (and with `generate`, first write) a document per TDD, and score each."""
    pairs, source, out_dir = _prepare(corpus, template, docs, generate)
    opened: Provider | None = None
    if provider is None and (generate or llm):
        provider = opened = await open_configured(
            settings,
        )
    evaluation = CorpusEvaluation(
        template, settings, source, out_dir, provider, force=force, llm=llm, on_event=on_event
    )
    rows: list[EvalRow] = []
    try:
        for number, tdd_path, reference in pairs:
            rows.append(await evaluation.row(number, tdd_path, reference))
    finally:
        if opened is not None:
            await opened.aclose()
    return EvalReport(
        corpus=str(corpus),
        template=template.name,
        source=source,
        rows=rows,
        totals=eval_totals(rows),
    )


@dataclass
class CorpusEvaluation:
    """What every row of one evaluation shares, and how one row is evaluated."""

    template: Template
    settings: Settings
    source: Source
    out_dir: Path
    provider: Provider | None
    force: bool = False
    llm: bool = False
    on_event: Progress | None = None

    async def row(self, number: str, tdd_path: Path, reference: Path | None) -> EvalRow:
        """One TDD's row: its document (generated now if asked) reviewed and scored."""
        row = EvalRow(
            number=number,
            tdd=str(tdd_path),
            reference=str(reference) if reference else None,
            document=None,
            source=self.source,
        )
        try:
            return await self._scored(row, tdd_path, reference)
        except TidsmithError as e:
            # One bad TDD or a failed generation should not lose the other rows.
            return row.model_copy(update={"error": str(e)})

    async def _scored(self, row: EvalRow, tdd_path: Path, reference: Path | None) -> EvalRow:
        tdd = load_tdd(tdd_path)
        doc_path = await self._document(row.number, tdd_path, tdd, reference)
        if doc_path is None or not _exists(doc_path):
            return row.model_copy(update={"error": "no document to evaluate"})
        row.document = str(doc_path)
        markdown, reference_text = _read_pair(doc_path, reference)
        report = await review_markdown(
            markdown,
            self.template,
            tdd=tdd,
            sections=load_sections_json(doc_path),
            provider=self.provider if self.llm else None,
            max_tokens=self._review_max_tokens(),
            on_event=self.on_event or (lambda _e: None),
        )
        return score_document(row, report, markdown, reference_text)

    async def _document(
        self, number: str, tdd_path: Path, tdd: Tdd, reference: Path | None
    ) -> Path | None:
        """The document to evaluate: generated now when asked (and missing, or --force)."""
        doc_path = _document_for(self.source, number, self.template, tdd, reference, self.out_dir)
        if self.source == "generated" and (self.force or not _exists(doc_path)):
            assert self.provider is not None
            document = await run_generate(
                tdd_path,
                settings=self.settings,
                provider=self.provider,
                template=self.template,
                out=self.out_dir,
                force=self.force,
                on_event=self.on_event,
            )
            doc_path = Path(document.path) if document.path else None
        return doc_path

    def _review_max_tokens(self) -> int:
        """The checklist review's reply limit: the settings', else the provider's default;
        at most the review's own limit (the model table's review_max_tokens)."""
        default = (
            provider_default_max_tokens(self.provider) if self.provider else DEFAULT_MAX_TOKENS
        )
        return min(self.settings.max_tokens or default, review_max_tokens())


def _prepare(
    corpus: Path, template: Template, docs: Path | None, generate: bool
) -> tuple[list[tuple[str, Path, Path | None]], Source, Path]:
    """The TDD/reference pairs, where our documents come from, and their folder."""
    if not corpus.is_dir():
        raise InputError(f"{corpus}: no such folder; pass a folder with tdds/ and tids/")
    pairs = find_pairs(corpus, template)
    source: Source = "generated" if generate else "docs" if docs is not None else "reference"
    out_dir = docs if docs is not None else Path("tidsmith-eval") / corpus.resolve().name
    if docs is not None and not generate and not docs.is_dir():
        raise InputError(f"{docs}: no such folder of generated documents")
    return pairs, source, out_dir


def _read_pair(doc_path: Path, reference: Path | None) -> tuple[str, str | None]:
    return read_document(doc_path), read_document(reference) if reference else None


def _exists(path: Path | None) -> bool:
    return path is not None and path.is_file()


def _document_for(
    source: Source,
    number: str,
    template: Template,
    tdd: Tdd,
    reference: Path | None,
    out_dir: Path,
) -> Path | None:
    if source == "reference":
        return reference
    if source == "generated":
        return default_output_path(tdd, template.doc_kind, out_dir)
    return _find_doc(out_dir, number, template.doc_kind.upper())


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def eval_totals(rows: list[EvalRow]) -> dict[str, float | None]:
    """Means over the documents evaluated; entity recall pooled over all entities."""
    done = [r for r in rows if not r.error]
    found = sum(rc.found for r in done for rc in r.recall.values())
    total = sum(rc.total for r in done for rc in r.recall.values())
    totals: dict[str, float | None] = {
        "documents": float(len(done)),
        "failed": float(len(rows) - len(done)),
        "sections_present": _mean([r.sections_present for r in done]),
        "code_blocks_parse": _mean([r.code_blocks_parse for r in done]),
        "checklist_pass_rate": _mean([r.checklist_pass_rate for r in done]),
        "tdd_coverage": _mean([r.tdd_coverage for r in done]),
        "lint_errors": float(sum(r.lint_errors for r in done)),
        "entity_recall": round(found / total, 3) if total else None,
    }
    for kind in KINDS:
        k_found = sum(r.recall[kind].found for r in done if kind in r.recall)
        k_total = sum(r.recall[kind].total for r in done if kind in r.recall)
        totals[f"recall_{kind}"] = round(k_found / k_total, 3) if k_total else None
    return totals
