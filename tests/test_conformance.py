"""Every schema tidsmith can send passes the providers' published structured-output rules.

The schemas are captured from real runs of the pipeline (both built-in
templates, a custom template whose part ids and table columns are JSON-schema
keywords, research, checklist review and revision, chat intent), then turned
into the request bodies the OpenAI and Anthropic providers send, live and in
provider batches, and checked by `agent.providers.conformance`, which is
written from the providers' documents, not from our transforms.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agent.chat.intent import IntentContext, ask_model
from agent.core.settings import Settings
from agent.core.templates import get_template, load_template_file
from agent.document.intact import Cut
from agent.draft.code_repair import repair_model
from agent.draft.repair import rewrite_model
from agent.notes.condense import note_batch_model, query_plan_model
from agent.pipeline.generate import run_generate
from agent.providers.anthropic import AnthropicProvider
from agent.providers.base import Request
from agent.providers.conformance import anthropic_problems, openai_strict_problems
from agent.providers.fake import FakeProvider
from agent.providers.openai import OpenAIProvider
from research import ResearchConfig

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
DOCS = Path(__file__).parent / "fixtures" / "research" / "docs"
KEYWORDS = ["title", "default", "type", "description", "format"]

HOSTILE = """\
name: hostile
version: "1.0"
title: Hostile
description: Part ids and table columns named after JSON-schema keywords.
doc_title: "Hostile: {feature}"
doc_kind: TID
system: Write one section from the TDD.
sections:
  - id: keywords
    title: Keywords
    guidance: Parts whose ids are schema keywords.
    parts:
PARTS
  - id: table
    title: Table
    guidance: A table whose columns are schema keywords.
    parts:
      - id: rows
        title: Rows
        kind: table
        columns: [Title, Default, Type, Description, Format]
        guidance: One row per thing.
"""


def _hostile_template(tmp_path: Path) -> Path:
    parts = "".join(
        f"      - id: {k}\n        title: {k.title()}\n        kind: "
        f"{'code' if k == 'format' else 'text'}\n"
        + ("        language: python\n" if k == "format" else "")
        + "        guidance: Anything.\n"
        for k in KEYWORDS
    )
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE.replace("PARTS\n", parts), encoding="utf-8")
    return path


def _requests(tmp_path: Path) -> list[Request]:
    """The requests real runs make, over every stage that calls a model."""
    seen: list[Request] = []
    hostile = load_template_file(_hostile_template(tmp_path))

    async def runs() -> None:
        for template, research in [
            (get_template("tid"), ResearchConfig(docs=[DOCS])),
            (get_template("spec"), None),
            (hostile, None),
        ]:
            provider = FakeProvider(model="fake")
            await run_generate(
                FIXTURE,
                settings=Settings(review="llm", max_revisions=1),
                provider=provider,
                template=template,
                write=False,
                research=research,
            )
            seen.extend(provider.requests)
        provider = FakeProvider(model="fake")
        await ask_model(provider, "write a spec for 0xcc/tdds/x.md", IntentContext())
        seen.extend(provider.requests)

    asyncio.run(runs())
    return seen


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, dict[str, Any]]]:
    requests = _requests(tmp_path_factory.mktemp("conformance"))
    # Templates share section names (both have an architecture): key by content too.
    found = {
        (r.prompt_id, r.schema_name, json.dumps(r.json_schema, sort_keys=True)): r.json_schema
        for r in requests
    }
    # Research models at their widest: every section id, the most queries and notes.
    ids = [s.id for s in get_template("tid").sections]
    queries = query_plan_model(ids, 12).model_json_schema()
    notes = note_batch_model([f"S{i}" for i in range(12)], 12).model_json_schema()
    found[("research_queries", "max", "")] = queries
    found[("research_notes", "max", "")] = notes
    # The fake's replies are never cut and their code parses, so the runs above
    # make no rewrite or repair call: their reply schemas, at a typical shape.
    cuts = [
        Cut(path=("coding_patterns", 1), bound=300, kind="item"),
        Cut(path=("storage_integration", "code"), bound=480, kind="code", language="python"),
        Cut(path=("integration_summary", 0, "failure_handling"), bound=37, kind="cell"),
    ]
    found[("rewrite_cut", "cut", "")] = rewrite_model(
        ["coding_patterns_item_2", "storage_integration_code", "failure_handling"], cuts
    ).model_json_schema()
    found[("repair_code", "code", "")] = repair_model(3600).model_json_schema()
    # Code of only comments is asked for in the same reply shape, at the part's bound.
    found[("write_code", "code", "")] = repair_model(1800).model_json_schema()
    return [(f"{p}/{n}", s) for (p, n, _), s in sorted(found.items())]


def test_the_runs_reach_every_kind_of_call(schemas: list[tuple[str, dict[str, Any]]]) -> None:
    prompts = {name.split("/")[0] for name, _ in schemas}
    assert {"draft_section", "review_checklist", "research_queries", "chat_intent"} <= prompts
    assert {"rewrite_cut", "repair_code", "write_code"} <= prompts
    names = {name for name, _ in schemas}
    assert "draft_section/section_keywords" in names
    assert len(schemas) >= 25


def _request(schema: dict[str, Any]) -> Request:
    from agent.providers.base import Message

    return Request(
        prompt_id="draft_section",
        prompt_version="1",
        label="x",
        messages=[Message(role="user", content="go")],
        schema_name="section_x",
        json_schema=schema,
    )


def test_every_schema_passes_openai_strict_mode_live_and_in_batches(
    schemas: list[tuple[str, dict[str, Any]]],
) -> None:
    provider = OpenAIProvider("gpt-5-mini", api_key="test")
    for name, schema in schemas:
        before = copy.deepcopy(schema)
        body = provider.chat_body(_request(schema))
        sent = body["response_format"]["json_schema"]
        assert sent["strict"] is True
        assert openai_strict_problems(sent["schema"]) == [], name
        assert schema == before, f"{name}: the transform changed the caller's schema"


def test_every_schema_passes_anthropic_structured_outputs(
    schemas: list[tuple[str, dict[str, Any]]],
) -> None:
    provider = AnthropicProvider("claude-sonnet-4-6", api_key="test")
    for name, schema in schemas:
        live = provider.message_kwargs(_request(schema))["output_config"]["format"]["schema"]
        batched = provider.batch_params(_request(schema))["output_config"]["format"]["schema"]
        assert anthropic_problems(live) == [], name
        assert batched == live


def test_keyword_named_properties_survive_and_validate(tmp_path: Path) -> None:
    """A part called `title` or a column called "Default" is a property, not a keyword."""
    template = load_template_file(_hostile_template(tmp_path))
    from agent.draft.plan import section_schema

    model, schema = section_schema(template.sections[0])
    sent = OpenAIProvider("gpt-5-mini", api_key="t").chat_body(_request(schema))
    props = sent["response_format"]["json_schema"]["schema"]["properties"]
    assert set(KEYWORDS) <= set(props)
    reply = {
        k: ("x" if k != "format" else {"intro": "i", "path": "", "code": "x = 1"}) for k in KEYWORDS
    }
    model.model_validate({**reply, "tdd_refs": []})


def test_the_check_catches_what_the_apis_rejected() -> None:
    """Requests the real APIs answered 400 to; the check must say why before we pay."""
    # OpenAI: "$ref cannot have keywords {'description'}".
    ref_with_sibling = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A", "description": "d"}},
        "required": ["a"],
        "additionalProperties": False,
        "$defs": {"A": {"type": "object", "properties": {}, "additionalProperties": False}},
    }
    assert any("$ref cannot have sibling" in p for p in openai_strict_problems(ref_with_sibling))
    # OpenAI: "'default' is not permitted"; every property required; objects closed.
    loose = {"type": "object", "properties": {"b": {"type": "string", "default": "x"}}}
    problems = " ".join(openai_strict_problems(loose))
    assert "'default'" in problems and "required" in problems and "additionalProperties" in problems
    # Anthropic: "For 'integer' type, property 'minimum' is not supported".
    bounded = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1}},
        "additionalProperties": False,
    }
    assert any("'minimum'" in p for p in anthropic_problems(bounded))
    # Nesting deeper than OpenAI's limit (counted through $refs).
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(11):
        deep = {
            "type": "object",
            "properties": {"n": deep},
            "required": ["n"],
            "additionalProperties": False,
        }
    assert any("levels of object nesting" in p for p in openai_strict_problems(deep))
