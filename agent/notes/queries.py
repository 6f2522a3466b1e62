"""Query planning: what to search the research sources for, from one structured call.

A second unusable reply falls back to code (queries from the TDD's
technologies and headings) instead of stopping the run: research is optional
help. Imports core, providers, the draft stage's prompts and calls, and
research's value types; never the pipeline or a front end.
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
from agent.core.tokens import count_tokens
from agent.draft.calls import structured_call
from agent.draft.prompting import PromptFile, attribute, fence_safe, fill, format_note, load_prompt
from agent.providers.base import Message, Provider
from research.base import Query, terms

QUERIES_PROMPT = "research_queries"
# Same headroom as drafting: tiktoken undercounts other tokenizers by up to ~25%.
_TOKENIZER_SLACK = 1.3


def prompt_budget(provider: Provider, max_tokens: int, overhead: str) -> int:
    """Tokens left for inserted text once the reply and the fixed prompt text are paid for."""
    free = provider.context_window - max_tokens - count_tokens(overhead)
    return int(free / _TOKENIZER_SLACK) - 64


def list_of(item: Any) -> Any:
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
            list_of(section_id),
            Field(min_length=1, max_length=3, description="ids of the sections it serves"),
        ),
    )
    return create_model(
        "QueryPlan",
        queries=(list_of(planned), Field(min_length=1, max_length=max_queries)),
    )


def _section_list(template: Template) -> str:
    return "\n".join(f"- {s.id}: {s.title}" for s in template.sections)


def _query_messages(
    prompt: PromptFile,
    model: type[BaseModel],
    tdd: Tdd,
    provider: Provider,
    template: Template,
    *,
    max_queries: int,
    max_tokens: int,
) -> list[Message]:
    """The planning messages: the TDD (or its technology sections, when it does not fit)."""
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
    budget = max(100, prompt_budget(provider, max_tokens, empty + user))
    # Technology choices live in a few sections; when the TDD does not fit, send those.
    focus = "technology stack libraries frameworks dependencies architecture components"
    focus += " " + " ".join(s.title for s in template.sections)
    system = fill(prompt.system, **names, tdd_text=fence_safe(excerpt(tdd, focus, budget).strip()))
    return [Message(role="system", content=system), Message(role="user", content=user)]


def _distinct_queries(plan: BaseModel) -> list[Query]:
    """The planned queries, whitespace normalised, each text once (case-insensitive)."""
    queries: list[Query] = []
    seen: set[str] = set()
    for item in plan.model_dump()["queries"]:
        text = " ".join(str(item["text"]).split())
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        queries.append(Query(text=text, sections=list(dict.fromkeys(item["sections"]))))
    return queries


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
    messages = _query_messages(
        prompt, model, tdd, provider, template, max_queries=max_queries, max_tokens=max_tokens
    )
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
    queries = _distinct_queries(parsed) if parsed is not None else []
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
    mentioned = sorted((n for n in counts if counts[n]), key=lambda n: -counts[n])
    return mentioned[:3] or [tdd.feature]


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
