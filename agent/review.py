"""Review: deterministic lints, TDD traceability, checklist verdicts, targeted revision.

Code checks what code can check exactly (sections present and in order, code
that parses, placeholders, word caps, pinned versions, TDD coverage). The model
is asked only about the checklist items that need judgement, and only for
sections whose lints passed. Revision re-drafts only the failing sections,
with the findings in the prompt, a bounded number of rounds.

Documents are read tolerantly: hand-written TIDs number their headings
differently or not at all, so a template section is found by its title
(number optional, case-insensitive, fuzzy), never by position.
"""

from __future__ import annotations

import ast
import asyncio
import difflib
import json
import re
import textwrap
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, create_model

from agent.cost import call_cost
from agent.draft import CallRecord, DraftPlan, Event, Progress, SectionDraft, draft_section
from agent.draft import parse_reply as _parse_reply
from agent.errors import InputError, OutputValidationError
from agent.prompting import fill, load_prompt, section_heading
from agent.providers.base import Message, Provider, Request
from agent.tdd import Heading, Tdd, _terms, excerpt, parse_headings, parse_links
from agent.templates import ChecklistItem, Template
from agent.tokens import count_tokens, truncate_tokens

REVIEW_PROMPT = "review_checklist"
REVISE_PROMPT = "revise_section"
PROMPT_IDS = (REVIEW_PROMPT, REVISE_PROMPT)

Severity = Literal["error", "warning"]
VerdictStatus = Literal["pass", "fail", "skipped", "not_reviewed"]


class Finding(BaseModel):
    """One deterministic lint result."""

    id: str = Field(description="stable lint id, e.g. code.python-syntax, placeholder")
    section: str | None = Field(description="template section id, None for the whole document")
    message: str
    severity: Severity = "error"
    where: str = Field(default="", description="the document heading it sits under, as written")
    line: int | None = Field(default=None, description="1-based line in the document")


class Verdict(BaseModel):
    """The model's judgement of one checklist item (or why it was not asked)."""

    item: str = Field(description="checklist item id")
    text: str = ""
    passed: bool
    status: VerdictStatus
    reason: str
    section: str | None = Field(description="the section to fix, when it failed")


class Revision(BaseModel):
    """One section re-drafted in one round, with what was wrong before and after."""

    section: str
    round: int
    findings_before: list[str]
    findings_after: list[str] = Field(default_factory=list)
    content_before: dict[str, Any]
    content_after: dict[str, Any] | None = Field(
        default=None, description="None when the re-draft itself failed"
    )
    error: str = ""


class ReviewReport(BaseModel):
    """What review.json holds: lints, verdicts, the traceability matrix, scores."""

    template: str
    template_version: str = ""
    lints: list[Finding] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    checklist_basis: Literal["llm", "lints"] = "lints"
    matrix: dict[str, list[str]] = Field(
        default_factory=dict, description="TDD heading -> the document sections covering it"
    )
    orphans: list[str] = Field(default_factory=list, description="TDD headings nothing covers")
    scores: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(
        default_factory=dict, description="what the scores are ratios of"
    )
    revisions: list[Revision] = Field(default_factory=list)
    calls: list[CallRecord] = Field(default_factory=list)

    def errors(self) -> list[Finding]:
        return [f for f in self.lints if f.severity == "error"]

    def failing_sections(self) -> set[str]:
        """Sections with an error-severity lint or a failed checklist verdict."""
        failing = {f.section for f in self.errors() if f.section}
        failing |= {v.section for v in self.verdicts if v.status == "fail" and v.section}
        return failing


def _quiet(_: Event) -> None:
    pass


# --- reading a document ------------------------------------------------------------


class DocSection(BaseModel):
    """A top-level section of a markdown document, matched to the template if it can be."""

    title: str
    start: int
    end: int
    text: str = Field(description="heading line included")
    section_id: str | None = None


class CodeBlock(BaseModel):
    language: str
    code: str
    line: int
    section: str | None
    where: str
    heading: str = Field(description="the nearest heading above the block")
    path: str = Field(default="", description="a `File:` path given just above the block")


def read_document(path: Path) -> str:
    """A markdown document's text, or an InputError saying what to do."""
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path to the document")
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass one markdown document")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {path} ({e.strerror}); check its permissions") from e
    if b"\x00" in raw:
        raise InputError(f"{path} looks binary (it has NUL bytes); pass a markdown text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 (bad byte at offset {e.start}); re-save it") from e
    if not text.strip():
        raise InputError(f"{path} is empty; nothing to review")
    return text.replace("\r\n", "\n").replace("\r", "\n")


_NUMBERING = re.compile(r"^\s*(?:section\s+)?(?:\d+(?:\.\d+)*|[ivx]+)[.):]?\s+", re.I)
_PAREN_NOTE = re.compile(r"\s*\((?:added|updated|new|planned|excerpt|optional)[^)]*\)\s*$", re.I)


def norm_title(title: str) -> str:
    """A heading title without numbering, notes, markup or case: for matching."""
    title = _PAREN_NOTE.sub("", _NUMBERING.sub("", title.strip()))
    return " ".join(re.sub(r"[^\w;]+", " ", title.lower()).split())


# Titles this close (difflib ratio) are the same section: "Key Algorithm" and
# "Key Algorithms" match, "Implementation Order" and "Implementation Strategy" do not.
_MATCH = 0.85


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def split_document(markdown: str, template: Template) -> list[DocSection]:
    """The document's top-level sections (below the title), matched to template sections."""
    headings = parse_headings(markdown)
    body = headings[1:] if headings and headings[0].level == 1 else headings
    if not body:
        return []
    top = min(h.level for h in body)
    tops = [h for h in body if h.level == top]
    sections: list[DocSection] = []
    for i, h in enumerate(tops):
        end = tops[i + 1].start if i + 1 < len(tops) else len(markdown)
        sections.append(
            DocSection(title=h.title, start=h.start, end=end, text=markdown[h.start : end])
        )
    # Greedy one-to-one matching, best pairs first, so two similar template
    # titles cannot both claim one heading.
    pairs = sorted(
        (
            (_similarity(norm_title(d.title), norm_title(s.title)), di, si)
            for di, d in enumerate(sections)
            for si, s in enumerate(template.sections)
        ),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_doc: set[int] = set()
    used_tpl: set[int] = set()
    for score, di, si in pairs:
        if score < _MATCH:
            break
        if di in used_doc or si in used_tpl:
            continue
        used_doc.add(di)
        used_tpl.add(si)
        sections[di].section_id = template.sections[si].id
    return sections


def _section_at(sections: list[DocSection], offset: int) -> DocSection | None:
    for s in sections:
        if s.start <= offset < s.end:
            return s
    return None


_FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`{]*)")
_FILE_LINE = re.compile(r"(?:File|Path):\s*`([^`]+)`", re.I)
_HEADING_LINE = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def code_blocks(markdown: str, sections: list[DocSection]) -> tuple[list[CodeBlock], list[Finding]]:
    """Fenced code blocks (indented fences in list items too), and unclosed fences."""
    lines = markdown.splitlines(keepends=True)
    blocks: list[CodeBlock] = []
    findings: list[Finding] = []
    offset = 0
    heading = ""
    i = 0
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    while i < len(lines):
        line = lines[i]
        offset = offsets[i]
        match = _FENCE_OPEN.match(line)
        if not match:
            h = _HEADING_LINE.match(line)
            if h:
                heading = h.group(1)
            i += 1
            continue
        indent, fence, lang = match.group(1), match.group(2), match.group(3).lower()
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                closed = True
                break
            # Content indented like its fence (inside a list item) loses that indent.
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        owner = _section_at(sections, offset)
        path_match = _FILE_LINE.search("".join(lines[max(0, i - 3) : i]))
        prev_text = "".join(lines[max(0, i - 2) : i])
        path = path_match.group(1) if path_match else ""
        if not path:
            # Hand-written TIDs put the path in the heading: #### `backend/x.py`
            tick = re.search(r"`([^`]+\.\w+)`", heading) if heading in prev_text else None
            path = tick.group(1) if tick else ""
        block = CodeBlock(
            language=lang,
            code="".join(body).rstrip("\n"),
            line=i + 1,
            section=owner.section_id if owner else None,
            where=owner.title if owner else "",
            heading=heading,
            path=path,
        )
        if not closed:
            findings.append(
                Finding(
                    id="code.unclosed-fence",
                    section=block.section,
                    where=block.where,
                    line=i + 1,
                    message=f"the code fence opened at line {i + 1} is never closed",
                )
            )
        blocks.append(block)
        i = j + 1
    return blocks, findings


# --- lints -------------------------------------------------------------------------


def _finding(
    lint: str,
    message: str,
    *,
    section: DocSection | None = None,
    section_id: str | None = None,
    severity: Severity = "error",
    line: int | None = None,
    where: str = "",
) -> Finding:
    return Finding(
        id=lint,
        section=section.section_id if section else section_id,
        where=section.title if section else where,
        message=message,
        severity=severity,
        line=line,
    )


def _line_of(markdown: str, offset: int) -> int:
    return markdown.count("\n", 0, offset) + 1


def lint_sections(markdown: str, template: Template, sections: list[DocSection]) -> list[Finding]:
    """Every template section present, in template order, and not empty."""
    findings: list[Finding] = []
    found = {s.section_id: s for s in sections if s.section_id}
    for s in template.sections:
        if s.id not in found:
            findings.append(
                _finding(
                    "section.missing",
                    f"no section {section_heading(template, s)!r}",
                    section_id=s.id,
                )
            )
    order = [t.id for t in template.sections]
    last = -1
    for s in sections:
        if not s.section_id:
            continue
        index = order.index(s.section_id)
        if index < last:
            findings.append(
                _finding(
                    "section.order",
                    f"{s.title!r} comes after a section the template puts later",
                    section=s,
                    line=_line_of(markdown, s.start),
                )
            )
        last = max(last, index)
        content = [
            line
            for line in s.text.splitlines()[1:]
            if line.strip() and not _HEADING_LINE.match(line) and line.strip() != "---"
        ]
        if not content:
            findings.append(
                _finding(
                    "section.empty",
                    f"{s.title!r} has a heading but no content",
                    section=s,
                    line=_line_of(markdown, s.start),
                )
            )
    return findings


_LANGS = {
    "py": "python",
    "python": "python",
    "python3": "python",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "bash": "shell",
    "sh": "shell",
    "shell": "shell",
    "zsh": "shell",
}
_TS_HINT = re.compile(
    r"^\s*(?:export\s|interface\s+\w+|const\s+\w+\s*[:=]|let\s+\w+\s*[:=]|"
    r"import\s+.*\s+from\s+['\"]|function\s+\w+\s*\(|type\s+\w+\s*=)",
    re.M,
)
_PY_HINT = re.compile(r"^\s*(?:def\s+\w+\s*\(|class\s+\w+[:(]|from\s+[\w.]+\s+import\s)", re.M)


def _python_error(code: str) -> str | None:
    try:
        ast.parse(textwrap.dedent(code))
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    return None


def _json_value(code: str) -> Any:
    try:
        return json.loads(code)
    except ValueError:
        return None


def _parse_error(lang: str, code: str) -> str | None:
    """Why the block does not parse as its language, or None when it does."""
    if lang == "python":
        return _python_error(code)
    if lang == "json":
        try:
            json.loads(code)
        except json.JSONDecodeError as e:
            return f"line {e.lineno}: {e.msg}"
        return None
    if lang == "yaml":
        try:
            list(yaml.safe_load_all(code))
        except yaml.YAMLError as e:
            return str(e).splitlines()[0]
        return None
    if lang == "toml":
        try:
            tomllib.loads(code)
        except tomllib.TOMLDecodeError as e:
            return str(e)
        return None
    return None


def _looks_like(lang: str, code: str) -> str | None:
    """The language a block's content really is when it is not its tag's, else None."""
    stripped = code.strip()
    if not stripped:
        return None
    if lang == "python":
        value = _json_value(stripped)
        if isinstance(value, dict | list) and stripped[0] in "{[":
            return "JSON"
        if _python_error(code) and len(_TS_HINT.findall(code)) >= 2:
            return "TypeScript/JavaScript"
        return None
    if lang == "json" and _json_value(stripped) is None:
        if _PY_HINT.search(code) and not _python_error(code):
            return "Python"
        if _TS_HINT.search(code):
            return "TypeScript/JavaScript"
        return None
    if lang in {"yaml", "toml", "shell"} and _PY_HINT.search(code) and not _python_error(code):
        return "Python"
    return None


def lint_code(blocks: list[CodeBlock]) -> tuple[list[Finding], int, int]:
    """Blocks in languages we can parse must parse and be what their tag says.

    Returns the findings, the number of blocks checked and how many were fine.
    """
    findings: list[Finding] = []
    checked = ok = 0
    for b in blocks:
        lang = _LANGS.get(b.language, "")
        if not lang:
            continue
        mismatch = _looks_like(lang, b.code)
        error = None if lang == "shell" else _parse_error(lang, b.code)
        if lang != "shell":
            checked += 1
            ok += not error and not mismatch
        if mismatch:
            findings.append(
                _finding(
                    "code.language-mismatch",
                    f"a `{b.language}` block that looks like {mismatch}",
                    section_id=b.section,
                    where=b.where,
                    line=b.line,
                    # Code tagged python that is JSON still parses; a wrong tag
                    # on code that does not parse is the real fault.
                    severity="error" if error else "warning",
                )
            )
        elif error:
            findings.append(
                _finding(
                    f"code.{lang}-syntax",
                    f"{lang} block does not parse: {error}",
                    section_id=b.section,
                    where=b.where,
                    line=b.line,
                )
            )
    return findings, checked, ok


_PLACEHOLDERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bTODO\b|\bFIXME\b|\bTBD\b"), "a TODO/FIXME/TBD marker"),
    (
        re.compile(
            r"\[(?:Feature|Component|Service|Module|Project|Your|Insert|Package|Class)"
            r"(?: [A-Za-z]+){1,3}\](?!\()"
        ),
        "a bracketed placeholder",
    ),
    (
        re.compile(r"<(?:your|insert|placeholder)[-_ ][^<>\n]{1,40}>", re.I),
        "an <angle> placeholder",
    ),
]
_ELLIPSIS_PROSE = re.compile(r"^\s*(?:[-*]\s*)?(?:\.{3}|…)\s*$")
_ELLIPSIS_COMMENT = re.compile(r"^\s*(?:#|//|/\*)\s*(?:(?:\.{3}|…).*|.*(?:\.{3}|…)\s*(?:\*/)?)$")
_EXAMPLE_HOST = re.compile(r"example\.(?:com|org|net)", re.I)
_CREDENTIAL = re.compile(
    r"password|passwd|secret|token|api[_-]?key|credential|://[^/\s:@]+:[^@\s]+@", re.I
)


def _stub_functions(code: str) -> list[str]:
    """Functions whose body is only `pass` or `...` (after a docstring)."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return []
    stubs: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        decorators = {ast.unparse(d).split("(")[0].split(".")[-1] for d in node.decorator_list}
        if decorators & {"abstractmethod", "overload"}:
            continue
        body = node.body
        first = body[0] if body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            body = body[1:]
        if len(body) == 1 and (
            isinstance(body[0], ast.Pass)
            or (
                isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and body[0].value.value is Ellipsis
            )
        ):
            stubs.append(node.name)
    return stubs


# Sections whose code the template asks to be complete, not stubs.
_COMPLETE_SECTIONS = {"code_examples", "key_algorithms"}


def _is_complete_example(block: CodeBlock) -> bool:
    heading = block.heading.lower()
    return block.section in _COMPLETE_SECTIONS or "complete" in heading or "example" in heading


def lint_placeholders(
    markdown: str, sections: list[DocSection], blocks: list[CodeBlock]
) -> list[Finding]:
    """No placeholder text, elided code, stub bodies or example.com credentials."""
    findings: list[Finding] = []
    in_code = _code_lines(markdown)
    offset = 0
    for number, line in enumerate(markdown.splitlines(keepends=True), 1):
        owner = _section_at(sections, offset)
        offset += len(line)
        text = line.rstrip("\n")
        hits: list[str] = [what for pattern, what in _PLACEHOLDERS if pattern.search(text)]
        code = in_code[number - 1]
        if (not code and _ELLIPSIS_PROSE.match(text)) or (code and _ELLIPSIS_COMMENT.match(text)):
            hits.append("elided content (`...`)")
        if _EXAMPLE_HOST.search(text) and _CREDENTIAL.search(text):
            hits.append("an example.com credential")
        for what in hits:
            findings.append(
                _finding(
                    "placeholder",
                    f"{what}: {text.strip()[:80]!r}",
                    section=owner,
                    line=number,
                )
            )
    for b in blocks:
        if _LANGS.get(b.language) != "python" or not _is_complete_example(b):
            continue
        for name in _stub_functions(b.code):
            findings.append(
                _finding(
                    "placeholder",
                    f"function {name}() in a complete example has a bare pass/... body",
                    section_id=b.section,
                    where=b.where,
                    line=b.line,
                )
            )
    return findings


def _code_lines(markdown: str) -> list[bool]:
    """For each line, whether it is inside a fenced block (fence lines excluded)."""
    mask: list[bool] = []
    fence = ""
    for line in markdown.splitlines():
        match = _FENCE_OPEN.match(line)
        if not fence:
            if match:
                fence = match.group(2)
            mask.append(False)
            continue
        stripped = line.strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            fence = ""
            mask.append(False)
            continue
        mask.append(True)
    return mask


def count_words(markdown: str) -> int:
    """Words as a reader counts them: tokens with a letter or digit, code included."""
    return sum(1 for token in markdown.split() if re.search(r"\w", token))


_SENTENCE_END = re.compile(r"[.!?](?:\s+|$)")


def count_sentences(text: str) -> int:
    prose = " ".join(
        line for line in text.splitlines() if line.strip() and not _HEADING_LINE.match(line)
    )
    # "e.g. " and "i.e. " end no sentence.
    prose = re.sub(r"\b(?:e\.g|i\.e|etc|vs)\.", "x", prose)
    parts = [p for p in _SENTENCE_END.split(prose) if re.search(r"\w", p)]
    return len(parts)


_TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in the text as rows of cells (header first, rule row dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        match = _TABLE_ROW.match(line)
        if match:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", match.group(1))]
            if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                current.append(cells)
            continue
        if current:
            tables.append(current)
            current = []
    return tables


def lint_spec(
    markdown: str, template: Template, sections: list[DocSection], tdd: Tdd | None
) -> list[Finding]:
    """Word cap, TL;DR length, numeric performance targets, ADR references."""
    findings: list[Finding] = []
    if template.max_words:
        words = count_words(markdown)
        if words > template.max_words:
            findings.append(
                _finding(
                    "spec.word-count",
                    f"{words} words, over the template's {template.max_words}",
                )
            )
    by_id = {s.section_id: s for s in sections if s.section_id}
    for s in template.sections:
        if ("tl;dr" in s.title.lower() or s.id == "tldr") and s.id in by_id:
            n = count_sentences(by_id[s.id].text)
            if not 2 <= n <= 3:
                findings.append(
                    _finding(
                        "spec.tldr-sentences",
                        f"the TL;DR has {n} sentences; it should have 2 or 3",
                        section=by_id[s.id],
                    )
                )
    if template.header == "spec":
        cited = set(re.findall(r"\bADR-\d+\b", markdown))
        named: set[str] = set()
        if tdd is not None:
            named = set(re.findall(r"\bADR-\d+\b", tdd.text))
        if tdd is not None and (named or any(link.kind == "adr" for link in tdd.links)):
            if not cited:
                which = ", ".join(sorted(named)) or "an ADR document"
                findings.append(
                    _finding("spec.adr-references", f"the TDD cites {which}; the spec cites none")
                )
        elif not cited:
            findings.append(
                _finding(
                    "spec.adr-references",
                    "the spec cites no ADR (See ADR-NNN)",
                    severity="warning",
                )
            )
        for adr in sorted(cited - named) if named else []:
            findings.append(
                _finding(
                    "spec.adr-unknown",
                    f"{adr} is cited but the TDD never names it",
                    severity="warning",
                )
            )
    return findings


def lint_targets(template: Template, sections: list[DocSection]) -> list[Finding]:
    """A table part with a Target column must have a number in every target cell."""
    findings: list[Finding] = []
    by_id = {s.section_id: s for s in sections if s.section_id}
    for s in template.sections:
        parts = [
            p
            for p in s.parts
            if p.kind == "table" and any(c.lower() == "target" for c in p.columns)
        ]
        if not parts or s.id not in by_id:
            continue
        doc = by_id[s.id]
        tables = [t for t in markdown_tables(doc.text) if any(c.lower() == "target" for c in t[0])]
        if not tables:
            findings.append(
                _finding("perf.target-numbers", "no table with a Target column", section=doc)
            )
            continue
        for table in tables:
            col = [c.lower() for c in table[0]].index("target")
            for row in table[1:]:
                cell = row[col] if col < len(row) else ""
                if not re.search(r"\d", cell):
                    findings.append(
                        _finding(
                            "perf.target-numbers",
                            f"target {cell or '(empty)'!r} has no number",
                            section=doc,
                        )
                    )
    return findings


_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*"
    r"(?P<spec>(?:===?|~=|>=|<=|!=|>|<)\s*[^\s;,#]+(?:\s*,\s*(?:===?|~=|>=|<=|!=|>|<)\s*[^\s;,#]+)*)?"
    r"\s*(?:;.*)?$"
)
_INSTALL = re.compile(r"\b(?:pip3?|uv pip|uv|poetry|pipx)\s+(?:install|add)\s+(.+)$")
_OPTION_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i"}
_DEP_FILE = re.compile(r"requirements[\w.-]*\.txt$|pyproject\.toml$|setup\.cfg$", re.I)


def canonical_name(name: str) -> str:
    """A package name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_specs(blocks: list[CodeBlock]) -> list[tuple[str, str, CodeBlock]]:
    """(package, version spec, block) for requirement lines and install commands."""
    found: list[tuple[str, str, CodeBlock]] = []
    for b in blocks:
        lang = _LANGS.get(b.language, b.language)
        context = f"{b.heading} {b.where}".lower()
        listing = lang in {"", "text", "txt", "requirements", "pip", "toml", "ini", "cfg"} and (
            "depend" in context or "requirement" in context or bool(_DEP_FILE.search(b.path))
        )
        for raw in b.code.splitlines():
            line = raw.split("#", 1)[0].strip()
            if lang == "shell":
                install = _INSTALL.search(line)
                if not install:
                    continue
                skip_next = False
                for arg in install.group(1).split():
                    arg = arg.strip("'\"")
                    if skip_next or arg.startswith("-"):
                        # `-r file`, `-e path`, `-i url` take a value that is no package.
                        skip_next = arg in _OPTION_WITH_VALUE
                        continue
                    if arg in {".", ".."} or "/" in arg or re.search(r"\.(txt|toml|whl)$", arg):
                        continue
                    match = _REQUIREMENT.match(arg)
                    if match:
                        found.append((match.group("name"), match.group("spec") or "", b))
                continue
            if not listing:
                continue
            line = line.strip("\"', ")
            if not line or line.startswith(("[", "-")) or re.match(r"^[\w.-]+\s*=\s", line):
                continue
            match = _REQUIREMENT.match(line)
            if match and not match.group("name").isdigit():
                found.append((match.group("name"), (match.group("spec") or "").strip(), b))
    return found


def lint_dependencies(
    blocks: list[CodeBlock],
    sections: list[DocSection],
    codebase_versions: dict[str, str] | None = None,
) -> list[Finding]:
    """Every dependency carries an exact version, and agrees with the codebase when known."""
    findings: list[Finding] = []
    known = {canonical_name(k): v for k, v in (codebase_versions or {}).items()}
    for name, spec, b in dependency_specs(blocks):
        where = {"section_id": b.section, "where": b.where, "line": b.line}
        if not spec:
            findings.append(
                _finding("deps.unpinned", f"{name} has no version (pin it with ==)", **where)
            )
            continue
        exact = re.match(r"^===?\s*(\S+)$", spec)
        if not exact:
            findings.append(
                _finding(
                    "deps.range",
                    f"{name}{spec} is a range; the seed asks for an exact == version",
                    severity="warning",
                    **where,
                )
            )
        pinned = known.get(canonical_name(name))
        if exact and pinned and exact.group(1) != pinned.lstrip("=v^~ "):
            findings.append(
                _finding(
                    "deps.version-mismatch",
                    f"{name}=={exact.group(1)} but the codebase uses {pinned}",
                    **where,
                )
            )
    for s in sections:
        for table in markdown_tables(s.text):
            header = [c.lower() for c in table[0]]
            if "version" not in header:
                continue
            col = header.index("version")
            for row in table[1:]:
                cell = row[col] if col < len(row) else ""
                label = " ".join(c for i, c in enumerate(row) if i != col)[:60]
                if not re.search(r"\d", cell):
                    findings.append(
                        _finding(
                            "deps.unpinned",
                            f"{label!r} has no version ({cell or 'empty'!r})",
                            section=s,
                        )
                    )
                    continue
                for key, value in known.items():
                    if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", label.lower()):
                        version = re.search(r"\d[\w.]*", cell)
                        if version and version.group(0) != value.lstrip("=v^~ "):
                            findings.append(
                                _finding(
                                    "deps.version-mismatch",
                                    f"{key} {version.group(0)} but the codebase uses {value}",
                                    section=s,
                                )
                            )
    return findings


# --- TDD coverage --------------------------------------------------------------------

# Headings every TDD has that name no part of the design to implement.
_BOILERPLATE = frozenset(
    {
        "overview",
        "introduction",
        "purpose",
        "scope",
        "summary",
        "executive summary",
        "table of contents",
        "contents",
        "references",
        "related documents",
        "related",
        "appendix",
        "revision history",
        "document history",
        "change log",
        "changelog",
        "glossary",
        "open questions",
        "approval",
        "approvals",
        "sign off",
        "document control",
        "metadata",
        "status",
        "next steps",
        "notes",
    }
)
_IDENTIFIER = re.compile(
    r"`([^`]+)`|\b([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+)\b|\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b"
)


def tdd_topics(tdd: Tdd) -> list[Heading]:
    """The TDD headings a document should cover: levels 2-3, boilerplate left out."""
    first_is_title = bool(tdd.headings) and tdd.headings[0].level == 1
    topics: list[Heading] = []
    for i, h in enumerate(tdd.headings):
        if i == 0 and first_is_title:
            continue
        if h.level > 3:
            continue
        name = norm_title(h.title)
        if not name or name in _BOILERPLATE or name.startswith("appendix"):
            continue
        topics.append(h)
    return topics


def _covers(heading: str, text: str, terms: set[str]) -> bool:
    """Whether a section's text names a TDD heading.

    A heading with identifiers (`DatasetService`, `dataset/{id}`, snake_case)
    is covered when one of them appears; otherwise when the section has all
    the heading's words (three in four for headings of four words or more).
    """
    idents = [next(g for g in m.groups() if g) for m in _IDENTIFIER.finditer(heading)]
    idents = [i.strip() for i in idents if len(i.strip()) > 2]
    if idents:
        return any(i.lower() in text.lower() for i in idents)
    wanted = set(_terms(norm_title(heading)))
    if not wanted:
        return False
    have = len(wanted & terms)
    return have == len(wanted) if len(wanted) < 4 else have >= 0.75 * len(wanted)


def coverage_matrix(
    tdd: Tdd,
    markdown: str,
    template: Template,
    sections: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, list[str]], list[str]]:
    """TDD heading -> the document sections covering it, and the headings none covers.

    A section covers a heading when its model's `tdd_refs` name the heading or
    its text names it (see `_covers`). Sections are template ids when matched,
    else their headings as written.
    """
    doc = split_document(markdown, template)
    refs: dict[str, set[str]] = {}
    for section_id, content in (sections or {}).items():
        refs[section_id] = {norm_title(str(r)) for r in content.get("tdd_refs", []) or []}
    terms = {id(s): set(_terms(s.text)) for s in doc}
    topics = tdd_topics(tdd)
    found: list[list[str]] = []
    for h in topics:
        name = norm_title(h.title)
        covering: list[str] = []
        for s in doc:
            by_ref = s.section_id is not None and any(
                r == name or _similarity(r, name) >= 0.9 for r in refs.get(s.section_id, set())
            )
            if by_ref or _covers(h.title, s.text, terms[id(s)]):
                covering.append(s.section_id or s.title)
        found.append(covering)
    # An umbrella heading ("1. System Architecture") is covered through its
    # subsections: its own words rarely appear together in one section.
    matrix: dict[str, list[str]] = {}
    for i, h in enumerate(topics):
        covering = list(found[i])
        for j in range(i + 1, len(topics)):
            if topics[j].level <= h.level:
                break
            covering += [c for c in found[j] if c not in covering]
        order = {s.section_id or s.title: n for n, s in enumerate(doc)}
        matrix[h.title] = sorted(covering, key=lambda c: order.get(c, 0))
    orphans = [title for title, covering in matrix.items() if not covering]
    return matrix, orphans


# --- the whole lint pass ----------------------------------------------------------------


class LintResult(BaseModel):
    findings: list[Finding]
    sections_found: int
    sections_total: int
    code_checked: int
    code_ok: int
    matrix: dict[str, list[str]] = Field(default_factory=dict)
    orphans: list[str] = Field(default_factory=list)
    topics: int = 0


def run_lints(
    markdown: str,
    template: Template,
    *,
    tdd: Tdd | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
    codebase_versions: dict[str, str] | None = None,
) -> LintResult:
    """All deterministic lints, with the counts the scores are made of."""
    doc = split_document(markdown, template)
    blocks, fence_findings = code_blocks(markdown, doc)
    code_findings, checked, ok = lint_code(blocks)
    findings = [
        *lint_sections(markdown, template, doc),
        *fence_findings,
        *code_findings,
        *lint_placeholders(markdown, doc, blocks),
        *lint_spec(markdown, template, doc, tdd),
        *lint_targets(template, doc),
        *lint_dependencies(blocks, doc, codebase_versions),
    ]
    matrix: dict[str, list[str]] = {}
    orphans: list[str] = []
    topics = 0
    if tdd is not None:
        matrix, orphans = coverage_matrix(tdd, markdown, template, sections)
        topics = len(matrix)
        findings.extend(
            _finding("coverage.orphan", f"no section covers the TDD's {o!r}", severity="warning")
            for o in orphans
        )
    return LintResult(
        findings=findings,
        sections_found=len({s.section_id for s in doc if s.section_id}),
        sections_total=len(template.sections),
        code_checked=checked,
        code_ok=ok,
        matrix=matrix,
        orphans=orphans,
        topics=topics,
    )


def lint_document(
    markdown: str,
    template: Template,
    *,
    tdd: Tdd | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
    codebase_versions: dict[str, str] | None = None,
) -> list[Finding]:
    """Every deterministic finding for a document (no LLM)."""
    return run_lints(
        markdown, template, tdd=tdd, sections=sections, codebase_versions=codebase_versions
    ).findings


def lint_checklist(template: Template, findings: list[Finding]) -> list[Verdict]:
    """Checklist verdicts from lints alone: an item fails when its sections have errors.

    Items naming no section fail on document-wide errors (word count, ...).
    """
    verdicts: list[Verdict] = []
    for item in template.checklist:
        scope = set(item.sections)
        bad = [
            f
            for f in findings
            if f.severity == "error" and (f.section in scope if scope else f.section is None)
        ]
        verdicts.append(
            Verdict(
                item=item.id,
                text=item.text,
                passed=not bad,
                status="fail" if bad else "pass",
                reason="; ".join(sorted({f.id for f in bad})) if bad else "no lint errors",
                section=bad[0].section if bad else None,
            )
        )
    return verdicts


def build_report(
    template: Template,
    result: LintResult,
    verdicts: list[Verdict],
    calls: list[CallRecord] | None = None,
    revisions: list[Revision] | None = None,
) -> ReviewReport:
    """The report and its scores from a lint pass and (optional) LLM verdicts."""
    llm = bool(verdicts)
    judged = verdicts if llm else lint_checklist(template, result.findings)
    asked = [v for v in judged if v.status in {"pass", "fail", "skipped"}]
    scores: dict[str, float] = {
        "sections_present": _ratio(result.sections_found, result.sections_total),
        "code_blocks_parse": _ratio(result.code_ok, result.code_checked),
        "checklist_pass_rate": _ratio(sum(v.passed for v in asked), len(asked)),
        "lint_errors": float(sum(f.severity == "error" for f in result.findings)),
        "lint_warnings": float(sum(f.severity == "warning" for f in result.findings)),
    }
    if result.topics:
        scores["tdd_coverage"] = _ratio(result.topics - len(result.orphans), result.topics)
    return ReviewReport(
        template=template.name,
        template_version=template.version,
        lints=result.findings,
        verdicts=verdicts,
        checklist_basis="llm" if llm else "lints",
        matrix=result.matrix,
        orphans=result.orphans,
        scores=scores,
        counts={
            "sections_found": result.sections_found,
            "sections_total": result.sections_total,
            "code_blocks_ok": result.code_ok,
            "code_blocks_checked": result.code_checked,
            "tdd_topics": result.topics,
            "tdd_orphans": len(result.orphans),
        },
        revisions=revisions or [],
        calls=calls or [],
    )


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 1.0


# --- LLM review ----------------------------------------------------------------------

BATCH_SIZE = 5
_TOKENIZER_SLACK = 1.3


def _reply_model(items: list[ChecklistItem], section_ids: list[str]) -> type[BaseModel]:
    """The reply schema for one batch: a verdict per item, ids and sections as enums."""
    # Dynamic Literals: the schema lists the only ids a reply may use.
    item_id: Any = Literal[tuple(i.id for i in items)]  # pyright: ignore[reportInvalidTypeForm]
    section: Any = Literal[(*section_ids, "")]  # pyright: ignore[reportInvalidTypeForm]
    verdict = create_model(
        "ChecklistVerdict",
        __config__=ConfigDict(extra="forbid"),
        id=(item_id, Field(description="the checklist item id")),
        reason=(
            str,
            Field(description="one or two sentences: what meets or misses it", max_length=300),
        ),
        passed=(bool, Field(description="true only if the document clearly meets the item")),
        section=(section, Field(description="id of the section to fix; empty when passed")),
    )
    many: Any = list[verdict]
    return create_model(
        "ChecklistReview",
        __config__=ConfigDict(extra="forbid"),
        verdicts=(
            many,
            Field(description="one verdict per item", min_length=len(items), max_length=len(items)),
        ),
    )


def _batch_document(markdown: str, doc: list[DocSection], items: list[ChecklistItem]) -> str:
    wanted = {s for i in items for s in i.sections}
    if any(not i.sections for i in items):
        return markdown
    parts = [s.text.strip() for s in doc if s.section_id in wanted]
    return "\n\n".join(parts) or markdown


async def _review_batch(
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    markdown: str,
    doc: list[DocSection],
    items: list[ChecklistItem],
    label: str,
    *,
    max_tokens: int,
    on_event: Progress,
) -> tuple[list[Verdict], list[CallRecord]]:
    prompt = load_prompt(REVIEW_PROMPT)
    model = _reply_model(items, [s.id for s in template.sections])
    schema = model.model_json_schema()
    note = (
        fill(prompt.format_in_text, schema=json.dumps(schema, separators=(",", ":")))
        if provider.schema_in_text
        else prompt.format_structured
    )
    room = int((provider.context_window - max_tokens) / _TOKENIZER_SLACK) - 600
    document = truncate_tokens(_batch_document(markdown, doc, items), max(200, room * 2 // 3))
    lines = [f"- {i.id}: {i.text}" for i in items]
    user = fill(
        prompt.user,
        document=document.strip(),
        section_ids=", ".join(s.id for s in template.sections),
        items="\n".join(lines),
        format_note=note.strip(),
    )
    tdd_text = ""
    if tdd is not None:
        budget = room - count_tokens(user)
        if budget >= 200:
            tdd_text = excerpt(tdd, " ".join(i.text for i in items), budget)
    system = fill(prompt.system, doc_name=template.title, tdd_text=tdd_text.strip())
    messages = [Message(role="system", content=system), Message(role="user", content=user)]
    convo = list(messages)
    calls: list[CallRecord] = []
    error = ""
    for attempt in (1, 2):
        request = Request(
            prompt_id=REVIEW_PROMPT,
            prompt_version=prompt.version,
            label=label,
            messages=convo,
            schema_name="checklist_review",
            json_schema=schema,
            max_tokens=max_tokens,
        )
        started = time.perf_counter()
        reply = await provider.complete(request)
        record = CallRecord(
            section=label,
            prompt_id=REVIEW_PROMPT,
            prompt_version=prompt.version,
            attempt=attempt,
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            cached_tokens=reply.usage.cached_tokens,
            latency_s=round(time.perf_counter() - started, 3),
            cost_usd=call_cost(provider, reply.usage),
            finish_reason=reply.finish_reason,
            ok=False,
        )
        try:
            parsed = _parse_reply(model, reply).model_dump(mode="json")
            got = {v["id"]: v for v in parsed["verdicts"]}
            missing = [i.id for i in items if i.id not in got]
            if missing:
                raise ValueError(f"no verdict for items {missing}; give one per item")
        except ValueError as e:
            error = str(e)
            calls.append(record.model_copy(update={"error": error}))
            if attempt == 1:
                on_event(Event(kind="retry", section=label, detail=error))
                convo = [
                    *messages,
                    Message(role="assistant", content=reply.text[:4000]),
                    Message(role="user", content=fill(prompt.retry, error=error)),
                ]
            continue
        calls.append(record.model_copy(update={"ok": True}))
        verdicts: list[Verdict] = []
        for item in items:
            v = got[item.id]
            passed = bool(v["passed"])
            section = v["section"] or None
            if not passed and section is None and item.sections:
                section = item.sections[0]
            verdicts.append(
                Verdict(
                    item=item.id,
                    text=item.text,
                    passed=passed,
                    status="pass" if passed else "fail",
                    reason=str(v["reason"]),
                    section=None if passed else section,
                )
            )
        return verdicts, calls
    on_event(Event(kind="info", detail=f"{label}: the review reply was not usable: {error}"))
    return [
        Verdict(
            item=i.id,
            text=i.text,
            passed=False,
            status="not_reviewed",
            reason=f"not reviewed: the model's reply was not usable after 2 attempts: {error}",
            section=None,
        )
        for i in items
    ], calls


async def llm_review(
    provider: Provider,
    template: Template,
    tdd: Tdd | None,
    markdown: str,
    *,
    skip_sections: set[str] | None = None,
    items: list[ChecklistItem] | None = None,
    max_tokens: int = 1200,
    batch_size: int = BATCH_SIZE,
    on_event: Progress = _quiet,
) -> tuple[list[Verdict], list[CallRecord]]:
    """Checklist verdicts from the model, one structured call per batch of items.

    Items concerning a section in `skip_sections` (its lints already failed)
    are not asked and come back as `skipped`. A batch whose reply is invalid
    twice comes back as `not_reviewed`, never as passed.
    """
    skip = skip_sections or set()
    items = list(template.checklist if items is None else items)
    doc = split_document(markdown, template)
    verdicts: dict[str, Verdict] = {}
    asked: list[ChecklistItem] = []
    for item in items:
        failed = [s for s in item.sections if s in skip]
        if failed:
            verdicts[item.id] = Verdict(
                item=item.id,
                text=item.text,
                passed=False,
                status="skipped",
                reason=f"not asked: lints already failed in {', '.join(failed)}",
                section=failed[0],
            )
        else:
            asked.append(item)
    batches = [asked[i : i + batch_size] for i in range(0, len(asked), batch_size)]
    limit = asyncio.Semaphore(max(1, provider.max_concurrency))

    async def one(n: int, batch: list[ChecklistItem]) -> tuple[list[Verdict], list[CallRecord]]:
        async with limit:
            label = f"review {n}/{len(batches)}"
            on_event(Event(kind="info", detail=f"{label}: {', '.join(i.id for i in batch)}"))
            return await _review_batch(
                provider,
                template,
                tdd,
                markdown,
                doc,
                batch,
                label,
                max_tokens=max_tokens,
                on_event=on_event,
            )

    results = await asyncio.gather(*(one(n, b) for n, b in enumerate(batches, 1)))
    calls: list[CallRecord] = []
    for batch_verdicts, batch_calls in results:
        verdicts.update({v.item: v for v in batch_verdicts})
        calls.extend(batch_calls)
    return [verdicts[i.id] for i in items], calls


# --- revision ------------------------------------------------------------------------


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
    on_event: Progress = _quiet,
) -> tuple[list[SectionDraft], ReviewReport]:
    """Review the drafts, re-draft only failing sections, re-review those; bounded rounds.

    Returns the final drafts (revised ones replaced) and the report, whose
    `revisions` show each revised section's findings and content before and after.
    """
    current = {d.section_id: d for d in drafts}
    order = [d.section_id for d in drafts]
    review_tokens = review_max_tokens or min(max_tokens, 1200)

    def contents() -> dict[str, dict[str, Any]]:
        return {k: d.content for k, d in current.items()}

    def lint() -> tuple[LintResult, str]:
        markdown = render([current[k] for k in order])
        result = run_lints(
            markdown, template, tdd=tdd, sections=contents(), codebase_versions=codebase_versions
        )
        return result, markdown

    result, markdown = lint()
    calls: list[CallRecord] = []
    verdicts: list[Verdict] = []
    if llm and template.checklist:
        verdicts, review_calls = await llm_review(
            provider,
            template,
            tdd,
            markdown,
            skip_sections=_error_sections(result.findings),
            max_tokens=review_tokens,
            on_event=on_event,
        )
        calls.extend(review_calls)
    revisions: list[Revision] = []
    to_fix = _failing(result.findings, verdicts) & set(plan.requests) & set(current)
    limit = asyncio.Semaphore(max(1, provider.max_concurrency))
    revise_version = load_prompt(REVISE_PROMPT).version
    for round_no in range(1, max_revisions + 1):
        if not to_fix:
            break
        problems = {s: section_findings(s, result.findings, verdicts) for s in sorted(to_fix)}

        async def redraft(section_id: str, problems: list[str]) -> SectionDraft:
            async with limit:
                on_event(Event(kind="info", detail=f"revising {section_id}"))
                messages = revise_messages(template, plan, current[section_id], problems)
                return await draft_section(
                    provider,
                    template,
                    template.section(section_id),
                    messages,
                    max_tokens=max_tokens,
                    on_event=on_event,
                    cites=plan.cites,
                )

        ids = list(problems)
        outcomes = await asyncio.gather(
            *(redraft(s, problems[s]) for s in ids), return_exceptions=True
        )
        revised: set[str] = set()
        this_round: list[Revision] = []
        for section_id, outcome in zip(ids, outcomes, strict=True):
            before = current[section_id]
            revision = Revision(
                section=section_id,
                round=round_no,
                findings_before=problems[section_id],
                content_before=before.content,
            )
            if isinstance(outcome, OutputValidationError):
                calls.extend(getattr(outcome, "calls", []))
                revision.error = str(outcome)
                revision.findings_after = problems[section_id]
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                revise_version = load_prompt(REVISE_PROMPT).version
                new_calls = [
                    c.model_copy(
                        update={"prompt_id": REVISE_PROMPT, "prompt_version": revise_version}
                    )
                    for c in outcome.calls
                ]
                calls.extend(new_calls)
                current[section_id] = outcome.model_copy(
                    update={"calls": [*before.calls, *new_calls]}
                )
                revision.content_after = outcome.content
                revised.add(section_id)
            this_round.append(revision)
        result, markdown = lint()
        if llm and revised:
            items = [i for i in template.checklist if set(i.sections) & revised]
            if items:
                new, review_calls = await llm_review(
                    provider,
                    template,
                    tdd,
                    markdown,
                    skip_sections=_error_sections(result.findings) & revised,
                    items=items,
                    max_tokens=review_tokens,
                    on_event=on_event,
                )
                calls.extend(review_calls)
                by_item = {v.item: v for v in new}
                verdicts = [by_item.get(v.item, v) for v in verdicts]
        for revision in this_round:
            if revision.content_after is not None:
                revision.findings_after = section_findings(
                    revision.section, result.findings, verdicts
                )
        revisions.extend(this_round)
        to_fix = _failing(result.findings, verdicts) & revised
    report = build_report(template, result, verdicts, calls, revisions)
    return [current[k] for k in order], report


def _error_sections(findings: Iterable[Finding]) -> set[str]:
    return {f.section for f in findings if f.severity == "error" and f.section}


def _failing(findings: Iterable[Finding], verdicts: Iterable[Verdict]) -> set[str]:
    failing = _error_sections(findings)
    failing |= {v.section for v in verdicts if v.status == "fail" and v.section}
    return failing


async def review_markdown(
    markdown: str,
    template: Template,
    *,
    tdd: Tdd | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
    codebase_versions: dict[str, str] | None = None,
    provider: Provider | None = None,
    max_tokens: int = 1200,
    on_event: Progress = _quiet,
) -> ReviewReport:
    """Review an existing document: lints, and checklist verdicts when given a provider."""
    result = run_lints(
        markdown, template, tdd=tdd, sections=sections, codebase_versions=codebase_versions
    )
    verdicts: list[Verdict] = []
    calls: list[CallRecord] = []
    if provider is not None and template.checklist:
        verdicts, calls = await llm_review(
            provider,
            template,
            tdd,
            markdown,
            skip_sections=_error_sections(result.findings),
            max_tokens=max_tokens,
            on_event=on_event,
        )
    return build_report(template, result, verdicts, calls)


# --- human output --------------------------------------------------------------------


def summary_lines(report: ReviewReport, limit: int = 6) -> list[str]:
    """The short human summary printed at the end of generate and review."""
    errors = report.errors()
    warnings = [f for f in report.lints if f.severity == "warning"]
    s = report.scores
    basis = "model" if report.checklist_basis == "llm" else "lints"
    line = (
        f"review: {len(errors)} lint errors, {len(warnings)} warnings; "
        f"checklist {s.get('checklist_pass_rate', 0.0):.0%} passed ({basis}); "
        f"sections {s.get('sections_present', 0.0):.0%} present; "
        f"code blocks {s.get('code_blocks_parse', 0.0):.0%} parse"
    )
    if "tdd_coverage" in s:
        line += f"; TDD coverage {s['tdd_coverage']:.0%} ({len(report.orphans)} orphans)"
    lines = [line]
    for f in errors[:limit]:
        place = f.section or f.where or "document"
        lines.append(f"  {f.id} [{place}]: {f.message}")
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more errors (see review.json)")
    for v in report.verdicts:
        if v.status in {"fail", "not_reviewed"}:
            lines.append(f"  checklist {v.item} {v.status} [{v.section or '-'}]: {v.reason}")
    for r in report.revisions:
        outcome = (
            f"failed to re-draft: {r.error}"
            if r.content_after is None
            else f"{len(r.findings_before)} -> {len(r.findings_after)} problems"
        )
        lines.append(f"  revised {r.section} (round {r.round}): {outcome}")
    return lines


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or " "


def review_appendix(report: ReviewReport) -> str:
    """A "Review" section for the end of the document (--review-appendix)."""
    s = report.scores
    out = ["## Review", "", *(f"- {k.replace('_', ' ')}: {v:g}" for k, v in s.items()), ""]
    if report.lints:
        out += ["### Lints", "", "| Severity | Lint | Section | Message |", "|---|---|---|---|"]
        out += [
            f"| {f.severity} | {f.id} | {_cell(f.section or f.where or '-')} | {_cell(f.message)} |"
            for f in report.lints
        ]
        out.append("")
    if report.verdicts:
        out += ["### Checklist", "", "| Item | Verdict | Reason |", "|---|---|---|"]
        out += [
            f"| {_cell(v.text or v.item)} | {v.status} | {_cell(v.reason)} |"
            for v in report.verdicts
        ]
        out.append("")
    if report.matrix:
        out += ["### TDD Coverage", "", "| TDD heading | Covered by |", "|---|---|"]
        out += [
            f"| {_cell(h)} | {_cell(', '.join(secs) or 'not covered')} |"
            for h, secs in report.matrix.items()
        ]
        out.append("")
    if report.revisions:
        out += ["### Revisions", "", "| Section | Round | Before | After |", "|---|---|---|---|"]
        out += [
            f"| {r.section} | {r.round} | {_cell('; '.join(r.findings_before))} | "
            f"{_cell('; '.join(r.findings_after) or 'fixed')} |"
            for r in report.revisions
        ]
    return "\n".join(out).rstrip() + "\n"


def find_tdd_for(doc_path: Path, markdown: str) -> Path | None:
    """The TDD a document links to (Source TDD / Related TDD), when that file exists."""
    for link in parse_links(markdown):
        if link.kind != "tdd" or "://" in link.target:
            continue
        candidate = (doc_path.parent / link.target.split("#")[0]).resolve()
        if candidate.is_file():
            return candidate
    return None


def load_sections_json(doc_path: Path) -> dict[str, dict[str, Any]] | None:
    """The section models `generate` saved beside a document, if any (for tdd_refs)."""
    path = doc_path.parent / ".tidsmith" / f"{doc_path.stem}.sections.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = [
    "PROMPT_IDS",
    "Finding",
    "ReviewReport",
    "Revision",
    "Verdict",
    "coverage_matrix",
    "lint_document",
    "llm_review",
    "review_and_revise",
    "review_appendix",
    "review_markdown",
    "summary_lines",
]
