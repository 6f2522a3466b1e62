"""Load, validate and parse a Technical Design Document (markdown), and excerpt it by topic.

Markdown structure comes from `agent.core.markdown`; imports `agent.core` only.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from agent.core import markdown
from agent.core.errors import InputError
from agent.core.files import decode_text, read_bytes
from agent.core.templates import Section
from agent.core.tokens import count_tokens, truncate_tokens

MAX_BYTES = 2 * 1024 * 1024

LinkKind = Literal["prd", "adr", "tdd", "tid", "other"]


class Heading(BaseModel):
    """One markdown heading and its own body, up to the next heading of any level."""

    title: str
    level: int
    text: str
    start: int


class Link(BaseModel):
    """A markdown link in the TDD, classified by the document type its target names."""

    text: str
    target: str
    kind: LinkKind


class Tdd(BaseModel):
    """A loaded, validated TDD with the facts later stages need."""

    path: str
    text: str
    sha256: str
    title: str
    doc_id: str
    feature: str
    feature_slug: str
    number: str | None
    headings: list[Heading]
    links: list[Link]


_DOC_ID = re.compile(r"^\s*(?:[-*]\s+)?(?:\*\*)?Document ID(?::\*\*|\*\*:|:)\s*(.+?)\s*$", re.I)
_TITLE_PREFIX = re.compile(r"^\s*(?:Technical Design Document|TDD)\s*[:\-\u2013\u2014]\s*", re.I)
# `002_FTDD|Model_Management`, `002-FTDD_Model_Management`, `FTDD|X`: number, marker, feature.
_TDD_NAME = re.compile(r"^(?:(\d+)[_\-\s]*)?[FP]?TDD(?:[|_\-\s]+(.*))?$", re.IGNORECASE)
_NUMBER = re.compile(r"^(\d+)(?:[_\-|\s]|$)")
_DOC_KIND = re.compile(r"^[FP]?(PRD|ADR|TDD|TID)S?$")
# File stems that name no feature, so the title is the better source.
_GENERIC_STEMS = {"", "tdd", "design", "readme", "index", "doc", "docs", "document", "draft"}


def load_tdd(path: Path) -> Tdd:
    """Read and validate a TDD file; raise InputError with what to do when it is unusable."""
    path = Path(path)
    text, raw = _read_text(path)
    headings = parse_headings(text)
    if not headings:
        raise InputError(
            f"{path} has no markdown headings; add a `# Title` and `## Section` headings"
        )
    title = _title(headings)
    doc_id = _doc_id(text) or path.stem
    feature, slug = _feature(path.stem, doc_id, title)
    return Tdd(
        path=str(path),
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        title=title,
        doc_id=doc_id,
        feature=feature,
        feature_slug=slug,
        number=_number(path.stem) or _number(doc_id),
        headings=headings,
        links=parse_links(text),
    )


def _read_text(path: Path) -> tuple[str, bytes]:
    """The file's text and raw bytes, or an InputError naming the problem."""
    raw = read_bytes(
        path,
        MAX_BYTES,
        "TDD markdown file",
        "split the TDD into smaller documents",
        remember=True,
    )
    text = decode_text(raw, path, "TDD markdown file")
    if not text.strip():
        raise InputError(f"{path} is empty; write the TDD first or pass another file")
    return text, raw


def require_body(tdd: Tdd) -> Tdd:
    """The TDD, or an InputError when it is only headings: drafting would invent everything."""
    if not _has_body(tdd.text, tdd.headings):
        raise InputError(
            f"{tdd.path} has headings but no text under them; write the design, then draft from it"
        )
    return tdd


def _has_body(text: str, headings: list[Heading]) -> bool:
    """Whether the TDD has text besides headings (a heading-only TDD drafts from nothing)."""
    if headings and text[: headings[0].start].strip():
        return True
    document = markdown.parse(text)
    return any(line.strip() for h in document.headings for line in document.lines[h.body : h.end])


def parse_headings(text: str) -> list[Heading]:
    """The ATX (`#`) and setext (`===`/`---`) headings outside fenced code, in order."""
    document = markdown.parse(text)
    headings: list[Heading] = []
    for h in document.headings:
        start, end = document.offsets[h.line], document.offsets[h.end]
        headings.append(Heading(title=h.title, level=h.level, text=text[start:end], start=start))
    return headings


def parse_links(text: str) -> list[Link]:
    """Inline markdown links outside fenced code, one per distinct target, in order."""
    links: list[Link] = []
    seen: set[str] = set()
    for link in markdown.parse(text).links:
        target = link.target.strip("<>").strip()
        if not target or target in seen:
            continue
        seen.add(target)
        links.append(Link(text=link.text.strip(), target=target, kind=link_kind(target)))
    return links


def link_kind(target: str) -> LinkKind:
    """Which kind of document a link target names: `..._FPRD|X.md` is a PRD, and so on."""
    path = re.split(r"[#?]", target, maxsplit=1)[0].rstrip("/")
    parts = [p for p in re.split(r"[/\\]", path) if p]
    if not parts:
        return "other"
    # The file name decides; the folder (`../prds/`) only when the name says nothing.
    for part in (Path(parts[-1]).stem, *reversed(parts[:-1])):
        for token in re.split(r"[^A-Za-z0-9]+", part):
            match = _DOC_KIND.match(token.upper())
            if match:
                return match.group(1).lower()  # type: ignore[return-value]
    return "other"


def _title(headings: list[Heading]) -> str:
    """The first level-1 heading (else the first heading), without a TDD prefix."""
    first = next((h for h in headings if h.level == 1), headings[0])
    return _TITLE_PREFIX.sub("", first.title).strip()


def _doc_id(text: str) -> str | None:
    """The value of a `**Document ID:**` line outside code, if any."""
    document = markdown.parse(text)
    for line, code in zip(document.lines, document.code_mask(), strict=True):
        match = None if code else _DOC_ID.match(line)
        if match and match.group(1).strip("*` "):
            return match.group(1).strip("*` ")
    return None


def _number(name: str) -> str | None:
    """A leading `NNN` document number (`002_...`), as written."""
    match = _NUMBER.match(name.strip())
    return match.group(1) if match else None


def _feature(stem: str, doc_id: str, title: str) -> tuple[str, str]:
    """Feature name and slug from `NNN_FTDD|Name`, else the doc id, a plain file name, the title."""
    for name in (stem, doc_id):
        match = _TDD_NAME.match(name.strip())
        if match and match.group(2) and _words(match.group(2)):
            # Kept as written: `miStudio` and `SAE_Training` are the team's own spelling.
            return _from_words(_words(match.group(2)))
    plain = re.sub(r"^\d+[_\-\s]*", "", stem)
    if plain.strip(" _-").lower() not in _GENERIC_STEMS and _words(plain):
        # `billing-export` -> `Billing Export`; upper-casing only the first letter keeps acronyms.
        return _from_words([w[0].upper() + w[1:] for w in _words(plain)])
    return _from_words(_words(title) or ["Untitled"])


def _words(name: str) -> list[str]:
    """The words of a name, split on anything that is not a letter or digit."""
    name = unicodedata.normalize("NFC", name)
    return [w for w in re.split(r"[\W_]+", name) if w]


def _from_words(words: list[str]) -> tuple[str, str]:
    """The feature as words (`Model Management`) and as a slug (`Model_Management`)."""
    return " ".join(words), "_".join(words)


# Words that carry no topic; leaving them out keeps scores about the subject.
_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "into", "is"}
    | {"it", "of", "on", "or", "that", "the", "this", "to", "what", "when", "which", "with"}
)


def word_terms(text: str) -> list[str]:
    """Lower-case word terms for lexical scoring, plural `s` folded, stopwords out."""
    terms: list[str] = []
    for word in re.findall(r"[^\W_]+", text.lower()):
        if len(word) < 2 or word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        terms.append(word)
    return terms


def _bm25(query: list[str], docs: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Okapi BM25 score of each doc for the query terms."""
    if not docs:
        return []
    avg_len = sum(len(d) for d in docs) / len(docs) or 1.0
    df = Counter(term for doc in docs for term in set(doc))
    scores: list[float] = []
    for doc in docs:
        counts = Counter(doc)
        score = 0.0
        for term in set(query):
            tf = counts[term]
            if not tf:
                continue
            idf = math.log((len(docs) - df[term] + 0.5) / (df[term] + 0.5) + 1)
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avg_len))
        scores.append(score)
    return scores


def excerpt(tdd: Tdd, query: str, budget_tokens: int) -> str:
    """The TDD parts most relevant to `query` within `budget_tokens`, in document order.

    The whole text comes back unchanged when it fits. Otherwise the header block
    (title, document id, related links) is always kept, then whole sections that
    share words with the query are added best BM25 score first, each with the
    heading lines of its parents; with no match at all, sections in document order.
    """
    if budget_tokens < 1:
        raise ValueError(f"budget_tokens must be >= 1, got {budget_tokens}")
    if count_tokens(tdd.text) <= budget_tokens:
        return tdd.text
    headings = tdd.headings
    # The header is everything before the first section after the title heading.
    body_from = 1 if headings and headings[0].level == 1 else 0
    header_end = headings[body_from].start if body_from < len(headings) else len(tdd.text)
    header = tdd.text[:header_end].strip("\n")
    used = _cost(header) if header else 0
    if used >= budget_tokens:
        return truncate_tokens(header, budget_tokens)
    sections = headings[body_from:]
    parents = _parents(sections)
    costs = [_cost(h.text) for h in sections]
    line_costs = [_cost(_heading_line(h)) for h in sections]
    # The heading text is in h.text too: a title that names the topic counts twice.
    scores = _bm25(word_terms(query), [word_terms(h.title + " " + h.text) for h in sections])
    # Sections that share no word with the query are noise to a small model; they
    # fill the budget (overview first) only when nothing matched at all.
    order = sorted(range(len(sections)), key=lambda i: (-scores[i], i))
    if any(scores):
        order = [i for i in order if scores[i] > 0]
    full: set[int] = set()
    line_only: set[int] = set()  # ancestors shown by their heading line alone
    for i in order:
        missing = [p for p in parents[i] if p not in full and p not in line_only]
        cost = costs[i] + sum(line_costs[p] for p in missing)
        if used + cost > budget_tokens:
            continue
        used += cost
        full.add(i)
        line_only.discard(i)
        line_only.update(missing)
    text = _join(header, sections, full, line_only)
    # Piece counts need not add up exactly to the joined text's count; drop the
    # weakest sections until the real count fits.
    for i in sorted(full, key=lambda i: (scores[i], -i)):
        if count_tokens(text) <= budget_tokens:
            break
        full.discard(i)
        line_only = {p for j in full for p in parents[j] if p not in full}
        text = _join(header, sections, full, line_only)
    return text if count_tokens(text) <= budget_tokens else truncate_tokens(text, budget_tokens)


def _parents(sections: list[Heading]) -> list[list[int]]:
    """For each section, the indexes of the sections it sits under."""
    result: list[list[int]] = []
    stack: list[int] = []
    for i, h in enumerate(sections):
        while stack and sections[stack[-1]].level >= h.level:
            stack.pop()
        result.append(list(stack))
        stack.append(i)
    return result


def _heading_line(h: Heading) -> str:
    """A section's heading as one ATX line (a setext title alone would read as prose)."""
    return f"{'#' * h.level} {h.title}"


def _cost(piece: str) -> int:
    """Tokens a piece adds to the excerpt, with the blank line that separates it."""
    return count_tokens(piece.strip("\n") + "\n\n")


def _join(header: str, sections: list[Heading], full: set[int], line_only: set[int]) -> str:
    """Header, then the chosen sections (whole or heading line only) in document order."""
    pieces = [header] if header else []
    for i, h in enumerate(sections):
        if i in full:
            pieces.append(h.text)
        elif i in line_only:
            pieces.append(_heading_line(h))
    return "\n\n".join(p.strip("\n") for p in pieces) + "\n"


# What a TDD names: CamelCase types and components (`DeliveryService`), and
# source files by base name (`worker.py`). A TID that uses them is about this
# design; one that does not reads as about any design.
_CAMEL_NAME = re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b")
_SOURCE_FILE = re.compile(r"\b[\w./-]+\.(?:py|tsx?)\b")


def tdd_names(text: str) -> list[str]:
    """The CamelCase names and `*.py/ts/tsx` file names in `text`, in order of first use."""
    found = [(m.start(), m.group()) for m in _CAMEL_NAME.finditer(text)]
    found += [(m.start(), m.group().rsplit("/", 1)[-1]) for m in _SOURCE_FILE.finditer(text)]
    return list(dict.fromkeys(name for _, name in sorted(found)))


# An HTTP route as TDDs write it, in prose or in a table: `POST /api/v1/events`,
# `| GET | `/api/v1/deliveries/{id}` |`.
ROUTE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ROUTE = re.compile(rf"\b({'|'.join(ROUTE_METHODS)})\b[\s|`]*(/[\w{{}}/.:-]*)")
# A TDD's API table can hold a dozen routes; they would crowd out every other
# name in the asks of sections its words match.
_ROUTES_PER_ASK = 4


def _route(match: re.Match[str]) -> str:
    """A route as asks and checks name it: `POST /api/v1/events`."""
    return f"{match.group(1)} {match.group(2)}"


def tdd_routes(text: str) -> list[str]:
    """The HTTP routes `text` names (`POST /api/v1/events`), in order of first use."""
    return list(dict.fromkeys(_route(m) for m in _ROUTE.finditer(text)))


def applies(section: Section, tdd: Tdd) -> list[str]:
    """What in the TDD makes `section` apply (its `applies_if`), or nothing."""
    if section.applies_if == "http_routes":
        return tdd_routes(tdd.text)
    return []


def _spelled_paths(text: str) -> dict[str, str]:
    """Each source file's base name and the one path the TDD gives it, if it has one.

    A path the TDD spells out, or, for a name given bare after a path on the
    same line (`relay/delivery/service.py`, `worker.py`, `retry.py`), that
    path's folder: the way a list of one package's files is written.
    """
    paths: dict[str, set[str]] = {}
    for line in text.split("\n"):
        folder = ""
        for m in _SOURCE_FILE.finditer(line):
            path = m.group()
            if "/" in path:
                folder = path.rsplit("/", 1)[0]
            elif folder:
                path = f"{folder}/{path}"
            if "/" in path:
                paths.setdefault(path.rsplit("/", 1)[-1], set()).add(path)
    return {name: next(iter(found)) for name, found in paths.items() if len(found) == 1}


# What a TDD says a file holds: the names in brackets right after it
# (`relay/models.py` (`Endpoint`, `Delivery`)), or what follows a dash after
# the line's last file ("`relay/api/events.py` — routes").
_HELD = re.compile(r"^`?\s*\(((?:[^()]|\(\))+?)\)")
_AFTER_DASH = re.compile(r"^[`\s,]*(?:\u2014|\u2013|-|:)\s+([^|]{3,80}?)\s*$")


def tdd_files(text: str) -> list[tuple[str, str]]:
    """Each source file the TDD gives a path for, and what it says the file holds.

    In order of first use, by the path `_spelled_paths` finds for it (a name
    given bare after a path on the same line gets that path's folder); what it
    holds is "" where the TDD says nothing beside the file.
    """
    paths = _spelled_paths(text)
    files: dict[str, str] = {}
    for line in text.split("\n"):
        matches = list(_SOURCE_FILE.finditer(line))
        # "`a.py`, `b.py`, `c.py` — routes": the dash's words are every file's.
        after = _AFTER_DASH.match(line[matches[-1].end() :]) if matches else None
        for m in matches:
            path = paths.get(m.group().rsplit("/", 1)[-1], "")
            if not path or (path != m.group() and "/" in m.group()):
                continue
            held = _HELD.match(line[m.end() :])
            holds = held.group(1) if held else after.group(1) if after else ""
            if not files.get(path):
                files[path] = " ".join(holds.replace("`", "").split())
    return list(files.items())


def _asked_names(text: str, paths: dict[str, str]) -> list[str]:
    """What a section's ask lists from one part of the TDD, in order of first use.

    Its CamelCase names; its source files by the path the TDD gives them
    somewhere (`relay/delivery/worker.py`, where this part says `worker.py`),
    so a directory tree drawn from the list has the TDD's folders; and its
    HTTP routes (`POST /api/v1/events`), without which Qwen2.5-Coder-1.5B
    wrote "Not applicable: the TDD does not define a network API" for a TDD
    with a table of eleven.
    """
    found = [(m.start(), m.group()) for m in _CAMEL_NAME.finditer(text)]
    for m in _SOURCE_FILE.finditer(text):
        name = m.group().rsplit("/", 1)[-1]
        found.append((m.start(), m.group() if "/" in m.group() else paths.get(name, name)))
    found += [(m.start(), _route(m)) for m in _ROUTE.finditer(text)]
    return list(dict.fromkeys(name for _, name in sorted(found)))


def names_for(tdd: Tdd, query: str, limit: int) -> list[str]:
    """Up to `limit` of the TDD's names, from its parts most relevant to `query` first.

    The parts rank as `excerpt` ranks them (BM25 on heading and body); parts
    that share no word with the query follow in document order, so a section
    with few matches still gets the TDD's other names. Files come with their
    path and routes are names too (`_asked_names`).
    """
    sections = tdd.headings or [Heading(title="", level=1, text=tdd.text, start=0)]
    scores = _bm25(word_terms(query), [word_terms(h.title + " " + h.text) for h in sections])
    paths = _spelled_paths(tdd.text)
    names: list[str] = []
    routes = 0
    for i in sorted(range(len(sections)), key=lambda i: (-scores[i], i)):
        for name in _asked_names(sections[i].text, paths):
            is_route = bool(_ROUTE.match(name))
            if name in names or (is_route and routes >= _ROUTES_PER_ASK):
                continue
            names.append(name)
            routes += is_route
        if len(names) >= limit:
            break
    return names[:limit]
