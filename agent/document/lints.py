"""Lints: what code can check in a document exactly, with no model.

Sections present and in order, code that parses, placeholders, word caps,
pinned versions, TDD coverage. Documents are read tolerantly: hand-written
TIDs number their headings differently or not at all, so a template section
is found by its title (number optional, case-insensitive, fuzzy), never by
position.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from agent.core.errors import InputError
from agent.core.files import read_text
from agent.core.markup import unsafe_markup
from agent.core.tdd import MAX_BYTES as MAX_DOCUMENT_BYTES
from agent.core.tdd import Heading, Tdd, parse_headings, word_terms
from agent.core.templates import Template, section_heading

Severity = Literal["error", "warning"]


class Finding(BaseModel):
    """One deterministic lint result."""

    id: str = Field(description="stable lint id, e.g. code.python-syntax, placeholder")
    section: str | None = Field(description="template section id, None for the whole document")
    message: str
    severity: Severity = "error"
    where: str = Field(default="", description="the document heading it sits under, as written")
    line: int | None = Field(default=None, description="1-based line in the document")


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
    """A markdown document's text (at most 2 MB, like a TDD), or an InputError saying what to do."""
    text = read_text(
        path, MAX_DOCUMENT_BYTES, "markdown document", "review smaller documents", remember=True
    )
    if not text.strip():
        raise InputError(f"{path} is empty; nothing to review")
    return text


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
    "mermaid": "mermaid",
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
    if lang == "mermaid":
        from agent.core.diagram import mermaid_errors

        errors = mermaid_errors(code)
        return f"line {errors[0][0]}: {errors[0][1]}" if errors else None
    return None


def code_error(language: str, code: str) -> str | None:
    """Why code tagged `language` does not parse, or None (also for languages not parsed)."""
    lang = _LANGS.get(language.lower(), "")
    return None if lang in ("", "shell") else _parse_error(lang, code)


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


def lint_markup(markdown: str, sections: list[DocSection]) -> list[Finding]:
    """No raw HTML and no link or image with a scheme other than http(s) or mailto.

    Model output is untrusted: `<img src=…>` is a beacon when the page renders,
    `<script>` and `javascript:` links run in some viewers.
    """
    findings: list[Finding] = []
    offset = 0
    for number, line in enumerate(markdown.splitlines(keepends=True), 1):
        owner = _section_at(sections, offset)
        offset += len(line)
        if "<" not in line and "](" not in line and "]:" not in line:
            continue
        findings.extend(
            _finding("markup.unsafe", f"{what}: remove it", section=owner, line=number)
            for what in unsafe_markup(line)
        )
    # Lines inside fenced code are code: drop what the line-by-line pass found there.
    in_code = _code_lines(markdown)
    return [f for f in findings if not (f.line and in_code[f.line - 1])]


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
    wanted = set(word_terms(norm_title(heading)))
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
    terms = {id(s): set(word_terms(s.text)) for s in doc}
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
        *lint_markup(markdown, doc),
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
