"""The research stage: plan queries, search the sources, condense cited notes.

Owns the stage's run, its cache and the References appendix; the model calls
are `agent.notes.condense`'s, the sources `research`'s. Imports core,
providers, the draft stage and research; never the pipeline or a front end.

    sources = build_sources(tdd, ResearchConfig(docs=[Path("docs")]), cache_dir=run_dir)
    result = await run_research(tdd, provider, template, sources, config=config,
                                max_tokens=1800, cache_dir=run_dir, on_event=print)
    system_prefix += "\\n\\n" + notes_block(result)

A source that fails is one line in `result.failures` and the run goes on
without it, unless the config is strict. The result is saved under
`cache_dir`, keyed by everything that shapes it, and reused on a rerun.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.core.errors import InputError, RetrievalError
from agent.core.files import read_bytes
from agent.core.records import Event, Progress, quiet
from agent.core.tdd import Tdd
from agent.core.templates import Template
from agent.core.write import write_json_atomic
from agent.notes.condense import code_notes, condense, prompt_versions, render_block
from agent.notes.queries import plan_queries
from agent.providers.base import Provider
from research.base import (
    Note,
    Passage,
    Query,
    ResearchConfig,
    ResearchResult,
    Source,
    SourceRef,
)
from research.codebase import pinned_versions

_KEY_FORMAT = 2  # 2: sources include those read but not cited


def research_key(
    tdd: Tdd,
    template: Template,
    provider: Provider,
    sources: Sequence[Source],
    config: ResearchConfig,
    max_tokens: int,
) -> str:
    """sha256 of everything that shapes a research result."""
    settings: dict[str, Any] = config.model_dump(mode="json")
    # Environment values are often keys; only their names shape the key.
    settings["mcp"] = [{**m, "env": sorted(m["env"])} for m in settings["mcp"]]
    shape = {
        "format": _KEY_FORMAT,
        "tdd": tdd.sha256,
        "template": [template.name, template.version],
        "prompts": prompt_versions(),
        "provider": [provider.name, provider.model],
        "sources": [[s.kind, s.name, s.fingerprint()] for s in sources],
        "config": settings,
        "max_tokens": max_tokens,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"research-{key[:16]}.json"


def _load_cached(path: Path, key: str) -> ResearchResult | None:
    try:
        cached = ResearchResult.model_validate_json(
            read_bytes(path, 64 * 1024 * 1024, "research cache")
        )
    except (InputError, ValidationError):
        return None
    return cached if cached.key == key else None


async def run_research(
    tdd: Tdd,
    provider: Provider,
    template: Template,
    sources: list[Source],
    *,
    config: ResearchConfig,
    max_tokens: int,
    cache_dir: Path | None,
    on_event: Progress = quiet,
) -> ResearchResult:
    """Plan queries, search every source, condense the hits into cited notes.

    Raises:
        RetrievalError: a source failed and `config.strict` is set.
    """
    key = research_key(tdd, template, provider, sources, config, max_tokens)
    path = _cache_path(cache_dir, key) if cache_dir is not None else None
    cached = _load_cached(path, key) if path is not None and path.is_file() else None
    if cached is not None:
        on_event(Event(kind="info", section="research", detail=f"reusing research from {path}"))
        # No model call was made this time: the calls belong to the run that made them.
        return cached.model_copy(update={"reused": True, "calls": []})
    if not sources:
        return ResearchResult(key=key, queries=[], notes=[], sources=[])
    on_event(Event(kind="start", section="research", detail=f"{len(sources)} sources"))
    result = await _research(tdd, provider, template, sources, config, max_tokens, key, on_event)
    # A run with a failed source is not the research the key describes: redo it next time.
    if path is not None and not result.failures:
        write_json_atomic(path, result)
    detail = f"{len(result.notes)} notes from {len(result.passages)} passages"
    on_event(Event(kind="done", section="research", detail=detail))
    return result


async def _research(
    tdd: Tdd,
    provider: Provider,
    template: Template,
    sources: list[Source],
    config: ResearchConfig,
    max_tokens: int,
    key: str,
    on_event: Progress,
) -> ResearchResult:
    """The research itself: queries, every source searched, the hits condensed into notes."""
    queries, calls, fell_back = await plan_queries(
        tdd,
        provider,
        template,
        max_queries=config.max_queries,
        max_tokens=max_tokens,
        on_event=on_event,
    )
    warnings: list[str] = []
    if fell_back:
        warnings.append("query plan built from the TDD by code (the model's reply was unusable)")
    searched, failures = await _search_all(sources, queries, config, on_event)
    verbatim = [p for p in searched if p.verbatim]
    texts = code_notes(verbatim)
    llm_notes, note_calls, note_warnings, shown = await condense(
        [p for p in searched if not p.verbatim],
        queries,
        provider,
        template,
        tdd.feature,
        max_tokens=max_tokens,
        on_event=on_event,
    )
    notes = _numbered(texts, llm_notes)
    passages = [*verbatim, *shown]
    return ResearchResult(
        key=key,
        queries=queries,
        notes=notes,
        sources=_refs(notes, passages),
        failures=failures,
        warnings=[*warnings, *note_warnings],
        passages=passages,
        calls=[*calls, *note_calls],
    )


def _numbered(
    by_code: list[tuple[str, list[str]]], by_model: list[tuple[str, list[str]]]
) -> list[Note]:
    """The notes numbered R1, R2, ...: the codebase's verbatim ones first, then the model's."""
    return [
        Note(id=f"R{i}", text=text, source_ids=ids, by_code=i <= len(by_code))
        for i, (text, ids) in enumerate([*by_code, *by_model], start=1)
    ]


async def _search_all(
    sources: list[Source], queries: list[Query], config: ResearchConfig, on_event: Progress
) -> tuple[list[Passage], list[str]]:
    """Every source's passages (failed sources left out) and one line per failure."""
    # Gather everything before raising, so no server process is left mid-search.
    results = await asyncio.gather(
        *(s.search(queries, config.per_query) for s in sources), return_exceptions=True
    )
    passages: list[Passage] = []
    failures: list[str] = []
    seen: set[tuple[str, str]] = set()
    for source, result in zip(sources, results, strict=True):
        if isinstance(result, RetrievalError):
            line = f"research source {source.kind} {source.name!r} skipped: {result}"
            if config.strict:
                failed = line.replace(" skipped:", " failed:")
                raise RetrievalError(
                    f"{failed}; fix it or run without --strict-research"
                ) from result
            failures.append(line)
            on_event(Event(kind="info", section="research", detail=line))
            continue
        if isinstance(result, BaseException):
            raise result  # not a source failure: a bug, with its traceback
        for p in result:
            if (p.source_id, p.location) not in seen:
                seen.add((p.source_id, p.location))
                passages.append(p)
    return passages, failures


def _refs(notes: list[Note], passages: list[Passage]) -> list[SourceRef]:
    """One reference per source: those the notes cite first, then the others the model read."""
    first: dict[str, Passage] = {}
    for p in passages:
        first.setdefault(p.source_id, p)
    refs: list[SourceRef] = []
    cited = [s for n in notes for s in n.source_ids]
    for sid in dict.fromkeys([*cited, *first]):
        p = first.get(sid)
        if p is None:
            continue
        # A whole-document id (related documents) points at the document, not one section.
        location = p.location if "#" in sid else p.location.split("#", 1)[0]
        refs.append(
            SourceRef(
                id=sid, kind=p.kind, title=p.document or p.title, location=location, path=p.path
            )
        )
    return refs


def notes_block(result: ResearchResult, max_tokens: int | None = None) -> str:
    """The text to append to the shared system prefix ("" without notes).

    `max_tokens` bounds it for small context windows by leaving out the last notes.
    """
    return render_block(result.notes, max_tokens)


def _link(ref: SourceRef, out_dir: Path | None) -> str:
    if not ref.path or out_dir is None:
        return ref.location
    anchor = "#" + ref.location.split("#", 1)[1] if "#" in ref.location else ""
    try:
        rel = Path(os.path.relpath(ref.path, out_dir.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        rel = Path(ref.path).as_posix()
    return rel + anchor


def references_markdown(
    result: ResearchResult, cited: set[str], out_dir: Path | None = None
) -> str:
    """The References appendix ("" when research found nothing).

    Sources of the notes the sections cite come first; every other source the
    research read follows as consulted, so a reader sees everything that was
    in front of the model even when a small model cites nothing. Codebase
    entries repeat the exact pins they declare. `cited` holds note ids (`R1`);
    with `out_dir`, file links are made relative to it.
    """
    refs = {r.id: r for r in result.sources}
    by_source: dict[str, list[str]] = {}
    consulted: list[str] = []
    for note in result.notes:
        for sid in note.source_ids:
            if note.id in cited:
                by_source.setdefault(sid, []).append(note.id)
            elif sid not in consulted:
                consulted.append(sid)
    consulted += [r.id for r in result.sources if r.id not in consulted]

    def entry(ref: SourceRef) -> str:
        target = _link(ref, out_dir)
        shown = f"<{target}>" if " " in target else target
        # A file is shown by its link from the document, never by an absolute
        # path: the document must not depend on where this machine keeps it.
        if ref.path:
            where = f"[{target}]({shown})"
        elif "://" in target:
            where = f"[{ref.location}]({shown})"
        else:
            where = f"`{ref.location}`"
        return f"- **{ref.title}** ({ref.kind}): {where}"

    pins = ", ".join(f"`{k}=={v}`" for k, v in pinned_versions(result).items())
    lines: list[str] = []
    for sid, note_ids in by_source.items():
        if sid in refs:
            lines.append(entry(refs[sid]) + ", cited as " + ", ".join(f"[{n}]" for n in note_ids))
    uncited = [refs[sid] for sid in consulted if sid in refs and sid not in by_source]
    if uncited:
        lines += ["", "Consulted, not cited:", ""]
        lines += [entry(ref) for ref in uncited]
    if not lines:
        return ""
    if pins:
        lines += ["", f"Pinned in the codebase: {pins}."]
    return "## References\n\n" + "\n".join(lines).strip("\n")
