"""Query planning and note condensing: the research stage's two kinds of model call.

Both are structured calls validated like a section draft: an invalid reply is
asked again once with the error. Unlike a section, research is optional help,
so a second failure falls back to code (queries from the TDD's headings,
notes from the top passages) instead of stopping the run.

Search results are untrusted. They reach the model only inside an
<untrusted-data> fence whose tags they cannot forge, and reach the section
prompts only inside a <research-notes> fence; sentences that read like
instructions to a model are dropped on the way in and on the way out.
That filter is a heuristic: an injection it does not recognise stays in the
notes, but always inside the fence, labelled as untrusted data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from types import GenericAlias
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from agent.core.records import CallRecord, Event, Progress
from agent.core.tdd import Tdd, excerpt
from agent.core.templates import Template
from agent.core.tokens import count_tokens, truncate_tokens
from agent.draft.prompting import attribute, fence_safe, fill, format_note, load_prompt
from agent.draft.sections import structured_call
from agent.providers.base import Message, Provider
from research.base import Note, Passage, Query, terms

QUERIES_PROMPT = "research_queries"
NOTES_PROMPT = "research_notes"
MAX_NOTE_CALLS = 3
NOTES_PER_CALL = 6
PASSAGE_TOKENS = 300
BATCH_TOKENS = 3000
# Same headroom as drafting: tiktoken undercounts other tokenizers by up to ~25%.
_TOKENIZER_SLACK = 1.3


def prompt_versions() -> dict[str, str]:
    return {p: load_prompt(p).version for p in (QUERIES_PROMPT, NOTES_PROMPT)}


# --- untrusted text -------------------------------------------------------------

# Our fence tags: text from a source must not be able to close a fence early.
# Sentences that address a model rather than inform a reader.
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,80}?"
    r"\b(instructions?|prompts?|rules?|guidelines?|directions?|context)\b"
    r"|\b(system prompt|you are now|new instructions|as an ai)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def neutralise(text: str) -> str:
    """The text with our fence tags defused (`<untrusted-data` -> `&lt;untrusted-data`)."""
    return fence_safe(text)


def drop_instructions(text: str) -> tuple[str, int]:
    """The text without sentences that read like instructions to a model, and how many."""
    if not _INSTRUCTION.search(text):
        return text, 0
    kept: list[str] = []
    dropped = 0
    for sentence in _SENTENCE.split(text):
        if _INSTRUCTION.search(sentence):
            dropped += 1
        elif sentence.strip():
            kept.append(sentence.strip())
    return " ".join(kept), dropped


def clean(text: str) -> tuple[str, int]:
    """Untrusted text made safe to place inside a fence: filtered, then defused."""
    kept, dropped = drop_instructions(text)
    return neutralise(kept), dropped


def _budget(provider: Provider, max_tokens: int, overhead: str) -> int:
    """Tokens left for inserted text once the reply and the fixed prompt text are paid for."""
    free = provider.context_window - max_tokens - count_tokens(overhead)
    return int(free / _TOKENIZER_SLACK) - 64


# --- query planning ---------------------------------------------------------------


def _list_of(item: Any) -> Any:
    """`list[item]` for a type made at run time (a checker cannot see it statically)."""
    return GenericAlias(list, (item,))


def query_plan_model(section_ids: Sequence[str], max_queries: int) -> type[BaseModel]:
    """The reply model for planning: bounded queries tagged with this template's section ids."""
    section_id: Any = Literal[tuple(section_ids)]  # an enum in the schema
    planned = create_model(
        "PlannedQuery",
        text=(
            Annotated[str, Field(min_length=8, max_length=160)],
            Field(description='"<technology> implementation patterns <specific technique>"'),
        ),
        sections=(
            _list_of(section_id),
            Field(min_length=1, max_length=3, description="ids of the sections it serves"),
        ),
    )
    return create_model(
        "QueryPlan",
        queries=(_list_of(planned), Field(min_length=1, max_length=max_queries)),
    )


def _section_list(template: Template) -> str:
    return "\n".join(f"- {s.id}: {s.title}" for s in template.sections)


async def plan_queries(
    tdd: Tdd,
    provider: Provider,
    template: Template,
    *,
    max_queries: int,
    max_tokens: int,
    on_event: Progress,
) -> tuple[list[Query], list[CallRecord], bool]:
    """Queries from one structured call; from code if the model's replies are unusable.

    Returns the queries, the calls made, and whether the code fallback was used.
    """
    prompt = load_prompt(QUERIES_PROMPT)
    model = query_plan_model([s.id for s in template.sections], max_queries)
    user = fill(
        prompt.user,
        max_queries=str(max_queries),
        feature=tdd.feature,
        doc_name=template.title,
        sections=_section_list(template),
        format_note=format_note(prompt, model.model_json_schema(), provider.schema_in_text),
    )
    source, title = Path(tdd.path).name, tdd.title
    names = {
        "doc_name": template.title,
        "tdd_source": attribute(source),
        "tdd_title": attribute(title),
    }
    empty = fill(prompt.system, **names, tdd_text="")
    budget = max(100, _budget(provider, max_tokens, empty + user))
    # Technology choices live in a few sections; when the TDD does not fit, send those.
    focus = "technology stack libraries frameworks dependencies architecture components"
    focus += " " + " ".join(s.title for s in template.sections)
    system = fill(prompt.system, **names, tdd_text=fence_safe(excerpt(tdd, focus, budget).strip()))
    messages = [Message(role="system", content=system), Message(role="user", content=user)]
    parsed, calls, _ = await structured_call(
        provider,
        prompt,
        model,
        messages,
        label="research:queries",
        schema_name="research_queries",
        max_tokens=max_tokens,
        on_event=on_event,
    )
    queries: list[Query] = []
    if parsed is not None:
        seen: set[str] = set()
        for item in parsed.model_dump()["queries"]:
            text = " ".join(str(item["text"]).split())
            if text.lower() in seen:
                continue
            seen.add(text.lower())
            queries.append(Query(text=text, sections=list(dict.fromkeys(item["sections"]))))
    if queries:
        return queries[:max_queries], calls, False
    on_event(
        Event(
            kind="info",
            section="research:queries",
            detail="the model's query plan was not usable; using queries built from the TDD",
        )
    )
    return fallback_queries(tdd, template, max_queries), calls, True


# Technology names worth searching for, as they appear in design documents.
_TECHNOLOGIES = [
    "FastAPI", "Django", "Flask", "Starlette", "Pydantic", "SQLAlchemy", "Alembic", "PostgreSQL",
    "MySQL", "SQLite", "Redis", "Celery", "RabbitMQ", "Kafka", "Docker", "Kubernetes", "Nginx",
    "React", "TypeScript", "Node.js", "Next.js", "Vue", "Svelte", "Zustand", "Tailwind", "Vite",
    "PyTorch", "Transformers", "HuggingFace", "safetensors", "CUDA", "NumPy", "pandas", "S3",
    "MinIO", "WebSocket", "GraphQL", "gRPC", "Prometheus", "Grafana", "Elasticsearch",
    "OpenTelemetry", "Terraform", "pytest", "Jest", "Vitest", "Playwright", "Go", "Rust", "Java",
    "Spring",
]  # fmt: skip
_GENERIC_HEADINGS = {
    "overview", "introduction", "summary", "table of contents", "contents", "references",
    "appendix", "related documents", "document control", "revision history", "glossary",
    "open questions", "conclusion", "executive summary", "approval", "changelog",
}  # fmt: skip


def _technologies(tdd: Tdd) -> list[str]:
    counts = {
        name: len(re.findall(rf"(?<![\w.]){re.escape(name)}(?![\w])", tdd.text, re.IGNORECASE))
        for name in _TECHNOLOGIES
    }
    found = sorted((n for n in counts if counts[n]), key=lambda n: -counts[n])
    return found[:3] or [tdd.feature]


def _best_sections(text: str, template: Template) -> list[str]:
    words = set(terms(text))
    scored = []
    for s in template.sections:
        about = set(terms(f"{s.title} {s.guidance} " + " ".join(p.title for p in s.parts)))
        scored.append((len(words & about), s.id))
    best = max(score for score, _ in scored)
    if best == 0:
        return [template.sections[0].id]
    return [sid for score, sid in sorted(scored, key=lambda x: -x[0]) if score == best][:2]


def fallback_queries(tdd: Tdd, template: Template, max_queries: int) -> list[Query]:
    """Seed-shaped queries built by code: the TDD's technologies and its section topics."""
    techs = _technologies(tdd)
    topics: list[tuple[str, str]] = []
    for h in tdd.headings:
        title = re.sub(r"^[\d.\s]+", "", h.title).strip()
        known = {t.lower() for t, _ in topics} | _GENERIC_HEADINGS
        if h.level in (2, 3) and title and title.lower() not in known:
            topics.append((title, h.text[:400]))
    if not topics:
        topics = [(tdd.feature, tdd.text[:400])]
    queries = []
    for i, (topic, body) in enumerate(topics[:max_queries]):
        tech = techs[i % len(techs)]
        text = f"{tech} implementation patterns {topic.lower()}"[:160]
        queries.append(Query(text=text, sections=_best_sections(f"{topic} {body}", template)))
    return queries


# --- condensing -------------------------------------------------------------------


def note_batch_model(labels: Sequence[str], max_notes: int) -> type[BaseModel]:
    label: Any = Literal[tuple(labels)]
    item = create_model(
        "ResearchNote",
        text=(
            Annotated[str, Field(min_length=10, max_length=400)],
            Field(description="one concrete fact, decision, version or practice"),
        ),
        passages=(
            _list_of(label),
            Field(min_length=1, max_length=4, description="labels of the results it comes from"),
        ),
    )
    notes = (_list_of(item), Field(min_length=1, max_length=max_notes))
    return create_model("ResearchNotes", notes=notes)


def batches(passages: list[Passage], max_calls: int = MAX_NOTE_CALLS) -> list[list[Passage]]:
    """Passages grouped by source kind, at most `max_calls` groups (the tail merged)."""
    groups: dict[str, list[Passage]] = {}
    for p in passages:
        groups.setdefault(p.kind, []).append(p)
    out = list(groups.values())
    if len(out) > max_calls:
        out = [*out[: max_calls - 1], [p for g in out[max_calls - 1 :] for p in g]]
    return out


def code_notes(passages: list[Passage]) -> list[tuple[str, list[str]]]:
    """Notes built from verbatim passages (codebase facts), text unchanged but defused."""
    return [(neutralise(p.text.strip()), [p.source_id]) for p in passages if p.text.strip()]


def _excerpt_note(passage: Passage) -> tuple[str, int]:
    text, dropped = clean(" ".join(passage.text.split()))
    # Headings and list marks read badly in a one-line note.
    text = re.sub(r"(^|\s)#{1,6}\s", r"\1", text)
    if len(text) > 400:
        text = text[:397].rsplit(" ", 1)[0] + "…"
    return (f"{passage.title}: {text}" if text else ""), dropped


async def condense(
    passages: list[Passage],
    queries: list[Query],
    provider: Provider,
    template: Template,
    feature: str,
    *,
    max_tokens: int,
    on_event: Progress,
) -> tuple[list[tuple[str, list[str]]], list[CallRecord], list[str], list[Passage]]:
    """Notes (text, source ids) from bounded calls, one per source batch.

    Returns the notes, the calls, warnings, and the passages the model was shown.
    """
    prompt = load_prompt(NOTES_PROMPT)
    notes: list[tuple[str, list[str]]] = []
    calls: list[CallRecord] = []
    warnings: list[str] = []
    shown_all: list[Passage] = []
    dropped_total = 0
    query_list = "\n".join(f"- {q.text}" for q in queries)
    system = fill(prompt.system, doc_name=template.title, feature=feature)
    for n, batch in enumerate(batches(passages), start=1):
        label = f"research:notes:{n}"
        probe = note_batch_model([f"P{i + 1}" for i in range(len(batch))], NOTES_PER_CALL)
        skeleton = fill(
            prompt.user,
            queries=query_list,
            passages="",
            max_notes=str(NOTES_PER_CALL),
            format_note=format_note(prompt, probe.model_json_schema(), provider.schema_in_text),
        )
        budget = min(BATCH_TOKENS, _budget(provider, max_tokens, system + skeleton))
        shown: list[Passage] = []
        blocks: list[str] = []
        used = 0
        for p in batch:
            text, dropped = clean(truncate_tokens(p.text, PASSAGE_TOKENS))
            dropped_total += dropped
            block = f"[P{len(shown) + 1}] {neutralise(p.title)} ({neutralise(p.source_id)})\n{text}"
            cost = count_tokens(block)
            if used + cost > budget:
                break
            used += cost
            shown.append(p)
            blocks.append(block)
        if not shown:
            continue
        shown_all.extend(shown)
        labels = [f"P{i + 1}" for i in range(len(shown))]
        model = note_batch_model(labels, NOTES_PER_CALL)
        user = fill(
            prompt.user,
            queries=query_list,
            passages="\n\n".join(blocks),
            max_notes=str(NOTES_PER_CALL),
            format_note=format_note(prompt, model.model_json_schema(), provider.schema_in_text),
        )
        messages = [Message(role="system", content=system), Message(role="user", content=user)]
        parsed, batch_calls, _ = await structured_call(
            provider,
            prompt,
            model,
            messages,
            label=label,
            schema_name=label.replace(":", "_"),
            max_tokens=max_tokens,
            on_event=on_event,
        )
        calls.extend(batch_calls)
        if parsed is None:
            warnings.append(f"{label}: the model's notes were not usable; kept excerpts instead")
            on_event(Event(kind="info", section=label, detail=warnings[-1]))
            for p in shown[:3]:
                text, dropped = _excerpt_note(p)
                dropped_total += dropped
                if text:
                    notes.append((text, [p.source_id]))
            continue
        for item in parsed.model_dump()["notes"]:
            text, dropped = clean(" ".join(str(item["text"]).split()))
            dropped_total += dropped
            cited = [shown[labels.index(lab)].source_id for lab in item["passages"]]
            ids = list(dict.fromkeys(cited))
            if text and ids and text not in {t for t, _ in notes}:
                notes.append((text, ids))
    if dropped_total:
        warnings.append(
            f"dropped {dropped_total} sentence(s) from research text that read like "
            "instructions to a model"
        )
        on_event(Event(kind="info", section="research", detail=warnings[-1]))
    return notes, calls, warnings, shown_all


# --- the notes in the section prompts ------------------------------------------------


def render_block(notes: list[Note], max_tokens: int | None = None) -> str:
    """The notes fenced as untrusted data, with the instructions around them."""
    if not notes:
        return ""
    prompt = load_prompt(NOTES_PROMPT)
    lines = [
        f"[{n.id}] {neutralise(n.text)}\n    (sources: {neutralise(', '.join(n.source_ids))})"
        for n in notes
    ]
    while lines:
        block = fill(prompt.block, notes="\n".join(lines)).strip()
        if max_tokens is None or count_tokens(block) <= max_tokens:
            return block
        # The last notes are the least relevant: drop them first.
        lines.pop()
    return ""
