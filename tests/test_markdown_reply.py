"""Sections written as markdown: the grammar that holds their shape, the code that
reads them back into the section's fields, and a draft that goes through both."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from agent.core.models import run_defaults
from agent.core.templates import INTRO_CHARS, Part, Section, get_template
from agent.draft.calls import MarkdownReply, read_reply
from agent.draft.code_reply import CODE_LINE_CHARS, code_lines_bound
from agent.draft.markdown_reply import (
    based_on,
    markdown_grammar,
    markdown_shape,
    read_markdown,
    shorten,
)
from agent.draft.plan import SectionDraft, SectionFacts
from agent.draft.sections import draft_section
from agent.providers.anthropic import AnthropicProvider
from agent.providers.base import Message, Reply, Request, with_schema_in_text
from agent.providers.fake import FakeProvider
from agent.providers.fitting import char_budget, resolve_ref
from agent.providers.local.catalog import chars_per_token
from agent.providers.openai import OpenAIProvider
from tests.test_grammar import HAS_LLAMA, Recognizer, _llama_parses

SECTION = Section(
    id="integration",
    title="Integration Points",
    guidance="How the feature meets the systems around it.",
    parts=[
        Part(
            id="summary", title="Summary", kind="text", guidance="What it touches.", max_chars=300
        ),
        Part(id="steps", title="Steps", kind="list", guidance="In order.", max_items=3),
        Part(
            id="systems",
            title="Integration Summary",
            kind="table",
            guidance="One row per system.",
            columns=["System", "Mechanism"],
            max_items=3,
        ),
        Part(id="worker", title="Worker", kind="code", language="python", guidance="The loop."),
        Part(id="files", title="Files", kind="tree", guidance="The files.", max_items=4),
        Part(id="flow", title="Flow", kind="diagram", guidance="Who calls whom.", max_items=3),
    ],
)

REPLY = """### Summary

The relay posts each event to its endpoints and records every attempt.

### Steps

- Store the event in `deliveries`.
- Claim it with `FOR UPDATE SKIP LOCKED`, then post it.
- Record the attempt.

### Integration Summary

| System | Mechanism |
|---|---|
| PostgreSQL | SQL over asyncpg |
| Redis | arq jobs |

### Worker

The worker claims one delivery and posts it.

```python
# relay/delivery/worker.py
async def deliver(ctx: dict, delivery_id: int) -> None:
    await ctx["service"].deliver(delivery_id)
```

### Files

- `relay/delivery/worker.py` - the arq worker
- `relay/delivery/service.py` - DeliveryService

### Flow

Components:
- `API`: takes events
- `Worker`: posts them

Flows:
- `API` -> `Worker`: delivery id

### Based on

- Delivery Flow
- Data Model
"""


def _schema(section: Section = SECTION, budget: int | None = None) -> dict[str, Any]:
    return markdown_shape(section, False, budget)[1]


def test_a_reply_is_read_into_every_part() -> None:
    content, notes = read_markdown(SECTION, REPLY, _schema())
    markdown_shape(SECTION, False, None)[0].model_validate(content)
    assert notes == []
    assert content["summary"].startswith("The relay posts")
    assert content["steps"][1] == "Claim it with `FOR UPDATE SKIP LOCKED`, then post it."
    assert content["systems"] == [
        {"system": "PostgreSQL", "mechanism": "SQL over asyncpg"},
        {"system": "Redis", "mechanism": "arq jobs"},
    ]
    # The file the first line names is the block's path, not a line of its code.
    assert content["worker"]["path"] == "relay/delivery/worker.py"
    assert content["worker"]["code"].startswith("async def deliver(")
    assert content["worker"]["intro"] == "The worker claims one delivery and posts it."
    assert content["files"][1] == {"path": "relay/delivery/service.py", "holds": "DeliveryService"}
    assert content["flow"]["components"][1] == {"name": "Worker", "responsibility": "posts them"}
    assert content["flow"]["edges"] == [
        {"source": "API", "target": "Worker", "label": "delivery id"}
    ]
    assert content["tdd_refs"] == ["Delivery Flow", "Data Model"]


def test_the_grammar_accepts_the_shape_it_asks_for_and_nothing_else() -> None:
    recognizer = Recognizer(markdown_grammar(SECTION, _schema()))
    assert recognizer.accepts(REPLY)
    # A missing sub-heading, a table with another header, code with no fence.
    assert not recognizer.accepts(REPLY.replace("### Steps\n", "### Stages\n"))
    assert not recognizer.accepts(REPLY.replace("| System | Mechanism |", "| Name | How |"))
    assert not recognizer.accepts(REPLY.replace("```python\n", ""))
    # Four steps where three at most are asked for.
    assert not recognizer.accepts(
        REPLY.replace("- Record the attempt.\n", "- Record it.\n- Again.\n" * 2)
    )


def test_the_grammar_bounds_code_by_lines() -> None:
    worker = SECTION.parts[3]
    lines = code_lines_bound(worker.max_chars)
    recognizer = Recognizer(markdown_grammar(SECTION, _schema()))
    body = "\n".join(f"    x{i} = {i}" for i in range(lines - 2))
    fits = REPLY.replace('    await ctx["service"].deliver(delivery_id)', body)
    assert recognizer.accepts(fits)
    over = REPLY.replace(
        '    await ctx["service"].deliver(delivery_id)', body + "\n    y = 1\n    z = 2"
    )
    assert not recognizer.accepts(over)


def test_a_list_item_goes_on_over_its_indented_lines() -> None:
    reply = REPLY.replace("`FOR UPDATE SKIP LOCKED`, then", "`FOR UPDATE SKIP LOCKED`,\n  then")
    content, _ = read_markdown(SECTION, reply, _schema())
    assert content["steps"][1] == "Claim it with `FOR UPDATE SKIP LOCKED`, then post it."


@pytest.mark.parametrize("name", ["tid", "spec"])
def test_a_code_intro_has_room_for_what_its_ask_states(name: str) -> None:
    # The ask states words_for(INTRO_CHARS), two thirds of the template's bound;
    # the grammar must let that through at the embedded default's reply limit.
    # Held to their fitted bound, the README's runs of 2026-12-04 had 3 and 9
    # intros cut at 162-202 characters and trimmed.
    budget = char_budget(run_defaults("local").max_tokens, chars_per_token("local"))
    for section in get_template(name).sections:
        schema = _schema(section, budget)
        defs = schema.get("$defs", {})
        for part in section.parts:
            if part.kind == "code":
                intro = resolve_ref(schema["properties"][part.id], defs)["properties"]["intro"]
                room = int(intro["maxLength"])
                assert room >= INTRO_CHARS, (section.id, part.id, room)


def test_an_intro_past_the_templates_bound_is_read_whole_and_valid() -> None:
    # Held to twice the template's bound, as every other string of a markdown reply.
    intro = ("The worker claims one delivery and posts it to its endpoint. " * 7).strip()
    assert INTRO_CHARS < len(intro) < 2 * INTRO_CHARS
    reply = REPLY.replace("The worker claims one delivery and posts it.", intro)
    content, notes = read_markdown(SECTION, reply, _schema())
    assert content["worker"]["intro"] == intro
    assert not [n for n in notes if "intro" in n]
    markdown_shape(SECTION, False, None)[0].model_validate(content)


def test_based_on_keeps_the_grammars_bound_not_a_fitted_one() -> None:
    # Fitted to a small reply limit, the run records of 2026-12-04 held about 30
    # "tdd_refs: shortened ..." notes a run, each ref cut before it was read
    # against the TDD's headings; the grammar lets six of 80 characters through.
    refs = [f"4.{i} Retry Policy and Backoff Schedule for Failed Attempts" for i in range(6)]
    reply = REPLY.replace("- Delivery Flow\n- Data Model\n", "".join(f"- {r}\n" for r in refs))
    schema = _schema(budget=300)
    content, notes = read_markdown(SECTION, reply, schema)
    assert content["tdd_refs"] == refs
    assert not [n for n in notes if n.startswith("tdd_refs")]
    markdown_shape(SECTION, False, 300)[0].model_validate(content)


def test_a_file_path_holding_a_hyphen_is_one_path() -> None:
    # Read lazily up to the first dash, corpus TDD 006's tree (2026-12-04) drew
    # `frontend/steering` holding "panel.py` - steering panel UI".
    entries = (
        "- `frontend/steering-panel.py` - steering panel UI\n"
        "- backend/combined-steering-service.py: combined steering\n"
        "- `relay/models.py` (Endpoint, Delivery)\n"
        "- relay/db.py\n"
    )
    reply = REPLY.replace(
        "- `relay/delivery/worker.py` - the arq worker\n"
        "- `relay/delivery/service.py` - DeliveryService\n",
        entries,
    )
    content, _ = read_markdown(SECTION, reply, _schema())
    assert content["files"] == [
        {"path": "frontend/steering-panel.py", "holds": "steering panel UI"},
        {"path": "backend/combined-steering-service.py", "holds": "combined steering"},
        {"path": "relay/models.py", "holds": "Endpoint, Delivery"},
        {"path": "relay/db.py", "holds": ""},
    ]


def test_an_intro_that_only_names_the_file_is_its_path() -> None:
    reply = REPLY.replace(
        "The worker claims one delivery and posts it.\n\n```python\n# relay/delivery/worker.py\n",
        "**`relay/delivery/worker.py`**\n\n```python\n",
    )
    content, _ = read_markdown(SECTION, reply, _schema())
    assert content["worker"]["intro"] == ""
    assert content["worker"]["path"] == "relay/delivery/worker.py"


def test_a_missing_sub_heading_is_an_error_that_names_it() -> None:
    with pytest.raises(ValueError, match='no sub-heading "### Steps"'):
        read_markdown(SECTION, REPLY.replace("### Steps", "### Stages"), _schema())


def test_headings_are_matched_without_numbering_marks_or_case() -> None:
    reply = REPLY.replace("### Summary", "## 1. **summary**").replace("### Files", "**Files:**")
    content, _ = read_markdown(SECTION, reply, _schema())
    assert content["summary"].startswith("The relay posts")
    assert len(content["files"]) == 2


def test_a_heading_inside_code_is_not_a_part() -> None:
    reply = REPLY.replace("# relay/delivery/worker.py", "### Steps")
    content, _ = read_markdown(SECTION, reply, _schema())
    assert content["steps"][0] == "Store the event in `deliveries`."
    assert content["worker"]["code"].startswith("### Steps")


def test_strings_and_lists_over_their_bounds_are_shortened_with_a_note() -> None:
    schema = _schema()
    long = "The relay posts events. " * 40
    reply = REPLY.replace(
        "The relay posts each event to its endpoints and records every attempt.", long
    )
    content, notes = read_markdown(
        SECTION, reply.replace("- Record the attempt.", "- A.\n- B."), schema
    )
    bound = schema["properties"]["summary"]["maxLength"]
    assert len(content["summary"]) <= bound and content["summary"].endswith("events.")
    assert len(content["steps"]) == 3
    assert any("summary" in n for n in notes) and any("first 3 of 4" in n for n in notes)


def test_shorten_ends_at_a_sentence_or_else_a_whole_word() -> None:
    assert shorten("One two three. Four five six seven", 30) == "One two three."
    assert shorten("alpha beta gamma delta", 14) == "alpha beta"


def test_research_note_ids_go_to_note_refs() -> None:
    schema = markdown_shape(SECTION, True, None)[1]
    content, _ = read_markdown(SECTION, REPLY.replace("- Data Model", "- Data Model\n- R2"), schema)
    assert content["note_refs"] == ["R2"]
    assert content["tdd_refs"] == ["Delivery Flow", "Data Model"]


def test_a_cut_reply_says_it_was_cut() -> None:
    model = markdown_shape(SECTION, False, None)[0]
    reading = MarkdownReply(
        grammar="", read=lambda text: read_markdown(SECTION, text, _schema())[0]
    )
    cut = Reply(text=REPLY.split("### Files")[0], finish_reason="length")
    with pytest.raises(ValueError, match="cut off at max_tokens"):
        read_reply(model, cut, reading)


def test_every_built_in_section_reads_its_own_shape() -> None:
    for name in ("tid", "spec"):
        for section in get_template(name).sections:
            schema = _schema(section)
            grammar = markdown_grammar(section, schema)
            assert grammar.startswith("root ::= ")
            assert all(f"### {p.title}" in grammar for p in section.parts)


@pytest.mark.model
@pytest.mark.skipif(not HAS_LLAMA, reason="needs xllamacpp")
def test_llama_cpp_parses_markdown_grammars() -> None:
    grammars = [
        markdown_grammar(s, _schema(s))
        for name in ("tid", "spec")
        for s in get_template(name).sections
    ]
    assert _llama_parses([*grammars, "root ::= missing-rule\n"]) == [True] * len(grammars) + [False]


def draft_markdown(provider: FakeProvider, facts: SectionFacts | None = None) -> SectionDraft:
    """`SECTION` drafted as markdown from `provider`'s replies."""
    messages = [Message(role="system", content="TDD"), Message(role="user", content="Write it.")]
    return asyncio.run(
        draft_section(
            provider,
            get_template("tid"),
            SECTION,
            messages,
            max_tokens=1600,
            facts=facts or SectionFacts(),
            markdown=True,
        )
    )


def test_a_markdown_draft_asks_with_its_grammar_and_no_schema() -> None:
    provider = FakeProvider(replies=[REPLY])
    draft = draft_markdown(
        provider, SectionFacts(headings={"2. Delivery Flow": [], "4. Data Model": []})
    )
    [request] = provider.requests
    assert request.reply_format == "markdown" and request.grammar.startswith("root ::= ")
    assert request.prompt_id == "draft_markdown"
    assert draft.content["systems"][0]["system"] == "PostgreSQL"
    # "Based on" read against the TDD's headings: spelled as the TDD spells them.
    assert draft.tdd_refs == ["2. Delivery Flow", "4. Data Model"]


def _markdown_request() -> Request:
    schema = _schema()
    return Request(
        prompt_id="draft_markdown",
        prompt_version="1",
        label="integration",
        messages=[Message(role="user", content="Write it.")],
        schema_name="section_integration",
        json_schema=schema,
        reply_format="markdown",
        grammar=markdown_grammar(SECTION, schema),
    )


def test_providers_send_a_markdown_request_without_a_schema() -> None:
    request = _markdown_request()
    native = OpenAIProvider("gpt-5-mini", api_key="test").chat_body(request)
    assert "response_format" not in native and "grammar" not in native
    assert "json" not in native["messages"][-1]["content"].lower()
    grammar = OpenAIProvider(
        "qwen-1.5b", api_key="local", base_url="http://127.0.0.1:9/v1", structured="grammar"
    ).chat_body(request)
    assert grammar["grammar"] == request.grammar and "response_format" not in grammar
    anthropic = AnthropicProvider("claude-sonnet-4-6", api_key="test").message_kwargs(request)
    assert "output_config" not in anthropic
    assert with_schema_in_text(request) == request


def test_a_small_reply_limit_fits_the_grammar_as_a_json_reply_is_fitted() -> None:
    """SmolLM2 at 500 tokens fills what it is given: the shape must close within it."""
    roomy, tight = _schema(), _schema(budget=750)
    worker = SECTION.parts[3]
    lines = {
        name: int(s["$defs"]["integration_worker_code"]["properties"]["code"]["maxLength"])
        // (CODE_LINE_CHARS + 1)
        for name, s in (("roomy", roomy), ("tight", tight))
    }
    assert lines["roomy"] == code_lines_bound(worker.max_chars)
    assert 4 <= lines["tight"] < lines["roomy"]
    assert tight["properties"]["summary"]["maxLength"] < roomy["properties"]["summary"]["maxLength"]
    # A reply within the fitted bounds still validates against the model.
    content, _ = read_markdown(SECTION, REPLY, tight)
    markdown_shape(SECTION, False, 750)[0].model_validate(content)


HEADINGS = {
    "1.2 Delivery Flow": ["DeliveryService", "RateLimiter", "Signer"],
    "3.1 Retry Schedule": ["RetryPolicy"],
    "5.2 Publish Request": ["EventIn", "POST"],
}


def test_based_on_names_the_tdd_headings_as_the_tdd_spells_them() -> None:
    refs = ["**Delivery flow**", "TDD: 3.1 retry schedule, table", "PRD:** [001_FPRD](x.md)"]
    assert based_on(refs, HEADINGS, "") == ["1.2 Delivery Flow", "3.1 Retry Schedule"]


def test_based_on_falls_back_to_the_headings_whose_names_the_section_uses() -> None:
    junk = ["TDD:** The TDD provides the necessary information about"]
    content = "DeliveryService claims it; the Signer signs; RetryPolicy waits."
    assert based_on(junk, HEADINGS, content) == ["1.2 Delivery Flow"]
    assert based_on(junk, HEADINGS, "nothing named") == []


def test_bounds_above_llama_cpps_repetition_limit_stay_bounds() -> None:
    """llama.cpp turns `x{0,n}` with n over 2000 into `x{0,}`: such bounds come in chunks."""
    long = Section(
        id="notes",
        title="Notes",
        guidance="Notes.",
        parts=[Part(id="body", title="Body", kind="text", guidance="All of it.", max_chars=6000)],
    )
    grammar = markdown_grammar(long, _schema(long))
    counts = [int(n) for n in re.findall(r"\{(?:\d+,)?(\d+)\}", grammar)]
    assert counts and max(counts) <= 2000
    recognizer = Recognizer(grammar)
    paragraph = "word " * 600  # 3,000 characters: past one chunk, within the bound
    assert recognizer.accepts(f"### Body\n\nA {paragraph.strip()}\n\n### Based on\n\n")
