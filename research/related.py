"""Related documents: what the TDD links to, plus the project-level ADR and PRD beside it.

A TDD under `0xcc/tdds/` links its PRD (`../prds/002_FPRD|Model_Management.md`);
the project's own decisions sit in `0xcc/adrs/000_PADR|*.md` and
`0xcc/prds/000_PPRD|*.md` whether or not the TDD links them. Each document is
split by heading and the sections are ranked per query with BM25.

This research source imports only agent.core and research.base (never
agent.providers, the stages or a front end).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from pathlib import Path
from urllib.parse import unquote

from pydantic import BaseModel

from agent.core.errors import InputError
from agent.core.files import read_bytes
from agent.core.tdd import Tdd, link_kind, parse_headings
from research.base import Passage, Query, Ranker, rank_passages, split_document

logger = logging.getLogger(__name__)

MAX_DOCUMENTS = 12
MAX_BYTES = 1024 * 1024
# `000_PADR|miStudio.md`: a project-level (P) document, not one feature's (F).
_PROJECT_DOC = re.compile(r"^\d+_P(ADR|PRD)\b", re.IGNORECASE)
# The TID is what we are about to write: reading an old one would copy it, not research.
_SKIPPED_KINDS = {"tid"}


class RelatedDoc(BaseModel):
    """A document found for the TDD, and how it was found."""

    path: str
    link: str  # relative to the TDD's folder, as a reader would follow it
    kind: str
    why: str  # "linked" or "project"


def _relative(path: Path, start: Path) -> str:
    try:
        return Path(os.path.relpath(path, start)).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def project_root(tdd_path: Path) -> Path:
    """The folder research may read for a TDD: the one holding `0xcc/`, else the TDD's own.

    A TDD in a `tdds/` folder that is not under `0xcc/` gets the folder above, so
    its sibling `prds/` and `adrs/` are inside.
    """
    here = Path(tdd_path).resolve().parent
    for folder in (here, *here.parents):
        if folder.name == "0xcc":
            return folder.parent
    return here.parent if here.name.lower() == "tdds" else here


def inside(path: Path, roots: list[Path]) -> bool:
    """Whether `path` (resolved: symlinks followed) lies in one of `roots`."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(root.resolve()) for root in roots)


def find_related(
    tdd: Tdd, roots: list[Path] | None = None, skipped: list[str] | None = None
) -> list[RelatedDoc]:
    """The documents the TDD links to, then project-level ADR/PRDs under its `0xcc/` root.

    Only files inside `roots` (default: the TDD's project root) are taken; a link
    outside them is left out, with one line in `skipped`: a TDD is untrusted input,
    and `/etc/...` or `../../private.md` must not reach the provider.
    """
    here = Path(tdd.path).resolve().parent
    me = Path(tdd.path).resolve()
    roots = roots if roots is not None else [project_root(Path(tdd.path))]
    found: dict[Path, RelatedDoc] = {}

    def add(path: Path, why: str) -> None:
        kind = link_kind(path.name)
        if path == me or path in found or kind in _SKIPPED_KINDS or len(found) >= MAX_DOCUMENTS:
            return
        if not inside(path, roots):
            if skipped is not None:
                skipped.append(
                    f"linked file {path.name} is outside the project root {roots[0]}: not read "
                    "(pass --project-root or --docs to allow its folder)"
                )
            return
        if not path.is_file() or path.suffix.lower() not in {".md", ".markdown", ".txt"}:
            return
        found[path] = RelatedDoc(path=str(path), link=_relative(path, here), kind=kind, why=why)

    for link in tdd.links:
        target = link.target
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        # `%7C` in a link is the `|` in the file name.
        target = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
        if not target:
            continue
        path = (here / target).resolve()
        if not path.exists():
            logger.info("the TDD links %s, which does not exist", link.target)
        add(path, "linked")
    root = _project_root(here)
    if root is not None:
        for folder in ("adrs", "prds"):
            for path in sorted((root / folder).glob("*.md")):
                if _PROJECT_DOC.match(path.name):
                    add(path.resolve(), "project")
                elif tdd.number and path.name.startswith(f"{tdd.number}_"):
                    # The feature's own PRD/ADR by its number, even when the TDD forgot the link.
                    add(path.resolve(), "project")
    return list(found.values())


def _project_root(folder: Path) -> Path | None:
    """The `0xcc/`-style root: the TDD's folder or its parent, if it has adrs/ or prds/."""
    for candidate in (folder, folder.parent):
        if (candidate / "adrs").is_dir() or (candidate / "prds").is_dir():
            return candidate
    return None


def _title(text: str, fallback: str) -> str:
    headings = parse_headings(text)
    first = next((h for h in headings if h.level == 1), headings[0] if headings else None)
    return first.title if first is not None else fallback


class RelatedSource:
    """Sections of the documents related to the TDD, ranked per query."""

    kind = "related"

    def __init__(self, tdd: Tdd, roots: list[Path] | None = None) -> None:
        self.name = "related"
        self.skipped: list[str] = []
        self.documents = find_related(tdd, roots, self.skipped)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for doc in self.documents:
            digest.update(doc.link.encode())
            try:
                raw = read_bytes(doc.path, MAX_BYTES, "related document")
                digest.update(hashlib.sha256(raw).digest())
            except InputError:
                digest.update(b"unreadable")
        return digest.hexdigest()

    def passages(self) -> list[Passage]:
        """Every section of every related document, in document order."""
        passages: list[Passage] = []
        for doc in self.documents:
            path = Path(doc.path)
            try:
                raw = read_bytes(path, MAX_BYTES, "related document", remember=True)
            except InputError as e:
                logger.info("related document skipped: %s", e)
                continue
            text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
            source_id = f"{doc.kind}:{path.name}"
            title = _title(text, path.stem)
            for chunk in split_document(text, title):
                anchor = f"#{chunk.anchor}" if chunk.anchor else ""
                passages.append(
                    Passage(
                        source_id=source_id,
                        kind=self.kind,
                        title=f"{title} — {chunk.title}" if chunk.title != title else title,
                        location=f"{doc.link}{anchor}",
                        text=chunk.text,
                        path=str(path),
                        document=title,
                    )
                )
        return passages

    async def search(self, queries: list[Query], limit: int) -> list[Passage]:
        # Off the event loop: reading files must never hold up Ctrl-C or other calls.
        passages = await asyncio.to_thread(self.passages)
        if not passages:
            return []
        ranker = Ranker.build([f"{p.title}\n{p.text}" for p in passages])
        ranked = rank_passages(passages, ranker, queries, limit)
        # Every related document gets a say: the project ADR rarely shares words
        # with a query, yet it holds the decisions a TID must follow.
        covered = {p.source_id for p in ranked}
        for source_id in dict.fromkeys(p.source_id for p in passages):
            if source_id in covered:
                continue
            own = [i for i, p in enumerate(passages) if p.source_id == source_id]
            totals = {i: 0.0 for i in own}
            for query in queries:
                scores = ranker.scores(query.text)
                for i in own:
                    totals[i] += scores[i]
            best = max(own, key=lambda i: (totals[i], -i))
            ranked.append(passages[best].model_copy(update={"score": round(totals[best], 4)}))
        return ranked
