"""Local docs (`--docs DIR`): markdown and text files, indexed with bm25s and cached on disk.

The index lives in `<cache>/docs-index/<folders hash>/`: the bm25s arrays plus
`manifest.json` with the passages and the folders' fingerprint (every file's
path, size and modification time). A run whose fingerprint matches loads the
index; any added, removed, resized or touched file rebuilds it.

This research source imports only agent.core and research.base (never
agent.providers, the stages or a front end).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Literal

import bm25s
from pydantic import BaseModel, ValidationError

from agent.core.errors import InputError, RetrievalError
from agent.core.files import read_bytes
from agent.core.settings import user_cache_dir
from research.base import Passage, Query, Ranker, rank_passages, split_document

SUFFIXES = {".md", ".markdown", ".txt", ".rst"}
MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 5000
_FORMAT = 1


class _Manifest(BaseModel):
    format: int
    fingerprint: str
    passages: list[Passage]


def default_index_dir() -> Path:
    return user_cache_dir() / "docs-index"


class DocsSource:
    """BM25 search over the markdown/text files under one or more folders."""

    kind = "docs"

    def __init__(self, folders: list[Path], index_dir: Path | None = None) -> None:
        self.folders = [Path(f) for f in folders]
        self.name = ",".join(f.name or str(f) for f in self.folders)
        root = index_dir or default_index_dir()
        key = "\n".join(str(f.resolve()) for f in self.folders)
        self.index_path = root / hashlib.sha256(key.encode()).hexdigest()[:16]
        # What the last search did with the index: for tests and the benchmark.
        self.last_index: Literal["", "built", "loaded"] = ""

    def _files(self) -> list[tuple[Path, Path]]:
        """(folder, file) for every indexable file, in a stable order."""
        found: list[tuple[Path, Path]] = []
        for folder in self.folders:
            for dirpath, dirnames, filenames in os.walk(folder):
                # Hidden folders are tool state (.git, .venv), not documentation.
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    # A symlink out of the folder is not the folder the user named.
                    if (
                        path.suffix.lower() in SUFFIXES
                        and not name.startswith(".")
                        and path.resolve().is_relative_to(Path(folder).resolve())
                    ):
                        found.append((folder, path))
                        if len(found) >= MAX_FILES:
                            return found
        return found

    def _missing(self) -> list[Path]:
        return [f for f in self.folders if not f.is_dir()]

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"docs-index v{_FORMAT}".encode())
        for folder in self._missing():
            digest.update(f"missing {folder}\n".encode())
        for folder, path in self._files():
            try:
                stat = path.stat()
            except OSError:
                continue
            rel = path.relative_to(folder).as_posix()
            digest.update(f"{folder}\0{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def _passages(self) -> list[Passage]:
        passages: list[Passage] = []
        for folder, path in self._files():
            try:
                raw = read_bytes(path, MAX_FILE_BYTES, "document", remember=True)
            except InputError:
                continue  # a FIFO, a device, too large or unreadable: not documentation
            text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
            rel = path.relative_to(folder).as_posix()
            shown = f"{folder.name}/{rel}" if folder.name else rel
            for chunk in split_document(text, path.stem):
                anchor = f"#{chunk.anchor}" if chunk.anchor else ""
                passages.append(
                    Passage(
                        source_id=f"docs:{shown}{anchor}",
                        kind=self.kind,
                        title=f"{path.name} — {chunk.title}",
                        location=f"{path}{anchor}",
                        text=chunk.text,
                        path=str(path.resolve()),
                    )
                )
        return passages

    def _load(self, fingerprint: str) -> tuple[Ranker, list[Passage]] | None:
        manifest_path = self.index_path / "manifest.json"
        try:
            manifest = _Manifest.model_validate_json(manifest_path.read_bytes())
            if manifest.format != _FORMAT or manifest.fingerprint != fingerprint:
                return None
            if not manifest.passages:
                return Ranker.build([]), []
            model = bm25s.BM25.load(str(self.index_path), show_progress=False)
        except (OSError, ValueError, ValidationError, json.JSONDecodeError):
            # A missing, stale or half-written index is rebuilt, never trusted.
            return None
        return Ranker(model, len(manifest.passages)), manifest.passages

    def _build(self, fingerprint: str) -> tuple[Ranker, list[Passage]]:
        passages = self._passages()
        ranker = Ranker.build([f"{p.title}\n{p.text}" for p in passages])
        # Write beside the target and swap, so a reader never sees half an index.
        scratch = self.index_path.with_name(f"{self.index_path.name}.{uuid.uuid4().hex}.tmp")
        scratch.mkdir(parents=True)
        try:
            if passages:
                ranker.model.save(str(scratch), show_progress=False)
            manifest = _Manifest(format=_FORMAT, fingerprint=fingerprint, passages=passages)
            (scratch / "manifest.json").write_text(manifest.model_dump_json(), encoding="utf-8")
            shutil.rmtree(self.index_path, ignore_errors=True)
            scratch.rename(self.index_path)
        except OSError:
            # A cache we cannot write costs speed on the next run, not this result.
            shutil.rmtree(scratch, ignore_errors=True)
        return ranker, passages

    def index(self) -> tuple[Ranker, list[Passage]]:
        """The index for the folders as they are now: loaded when current, else rebuilt."""
        fingerprint = self.fingerprint()
        loaded = self._load(fingerprint)
        if loaded is not None:
            self.last_index = "loaded"
            return loaded
        self.last_index = "built"
        return self._build(fingerprint)

    async def search(self, queries: list[Query], limit: int) -> list[Passage]:
        missing = self._missing()
        if missing:
            raise RetrievalError(f"docs folder {missing[0]} does not exist or is not a folder")
        # Building an index is CPU and disk work: keep the event loop free.
        ranker, passages = await asyncio.to_thread(self.index)
        return rank_passages(passages, ranker, queries, limit)
