"""Fitting a reply's schema to a small model's token limit, and what the prompt then says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.core.templates import get_template, section_model
from agent.draft.plan import section_schema
from agent.draft.prompting import (
    CHARS_PER_LINE,
    CHARS_PER_WORD,
    describe_fields,
    lines_for,
    part_bounds,
    words_for,
)
from agent.providers import default_max_tokens
from agent.providers.fitting import CHARS_PER_TOKEN, char_budget, fit_schema, worst_case_chars
from agent.providers.local import MODELS, chars_per_token

CASSETTES = Path(__file__).parent.parent / "cassettes"


def test_labelled_lists_keep_their_count_and_the_prompt_says_so() -> None:
    """The TID's four labelled bullets are never fitted away; the prompt says "exactly 4"."""
    section = get_template("tid").sections[0]
    fitted = fit_schema(section_schema(section)[1], char_budget(1000))
    for part in section.parts:
        assert part_bounds(part, fitted)[1:] == (4, 4)
    fields = describe_fields(section, schema=fitted)
    assert "development_approach (Development Approach): a list of exactly 4 items" in fields


def test_the_prompt_states_the_fitted_counts_and_lengths() -> None:
    section = next(s for s in get_template("tid").sections if s.id == "integration_points")
    schema = section_schema(section)[1]
    fitted = fit_schema(schema, char_budget(1000))
    table = next(p for p in section.parts if p.id == "integration_summary")
    code = next(p for p in section.parts if p.id == "storage_integration")
    _, least, most = part_bounds(table, fitted)
    assert (least, most) != (table.min_items, table.max_items)  # fitting took rows away
    fields = describe_fields(section, schema=fitted)
    count = f"exactly {most}" if least == most else f"{least} to {most}"
    assert f"a table: a list of {count} rows" in fields
    limit = fitted["properties"]["storage_integration"]
    code_limit = fitted["$defs"][limit["$ref"].rsplit("/", 1)[-1]]["properties"]["code"]
    assert f"never over {code_limit['maxLength']} characters" in fields
    assert f"at most {lines_for(code_limit['maxLength'])} lines" in fields
    # Without a fitted schema the template's own numbers are stated.
    assert part_bounds(code, None)[0] == code.max_chars
    assert f"never over {code.max_chars} characters" in describe_fields(section)


@pytest.mark.parametrize("bound", [40, 70, 186, 200, 260, 533, 869, 1800])
def test_the_words_and_lines_asked_for_end_well_inside_the_bound(bound: int) -> None:
    """A small model cannot count characters, and the grammar stops a string at
    its bound wherever the model is: the words and lines the prompt asks for,
    at the rates prose and code run at, come to about two thirds of it."""
    assert words_for(bound) * CHARS_PER_WORD <= bound * 0.75
    if bound >= 3 * CHARS_PER_LINE:
        assert lines_for(bound) * CHARS_PER_LINE <= bound * 0.75


def test_each_item_cell_and_role_is_sized_by_its_own_bound() -> None:
    """A list item is sized by the item's bound, not the list's; cells and roles likewise."""
    tid = get_template("tid")
    budget = char_budget(1000, chars_per_token("local"))
    for section in tid.sections:
        fitted = fit_schema(section_model(section).model_json_schema(), budget)
        defs = fitted.get("$defs", {})
        fields = describe_fields(section, schema=fitted).splitlines()
        for part, line in zip(section.parts, fields, strict=False):
            node = fitted["properties"][part.id]
            if part.kind == "list":
                inner = node["items"]["maxLength"]
            elif part.kind == "table":
                row = defs[node["items"]["$ref"].rsplit("/", 1)[-1]]
                inner = min(c["maxLength"] for c in row["properties"].values())
            elif part.kind == "diagram":
                block = defs[node["$ref"].rsplit("/", 1)[-1]]
                box = defs[block["properties"]["components"]["items"]["$ref"].rsplit("/", 1)[-1]]
                inner = box["properties"]["responsibility"]["maxLength"]
            else:
                continue
            assert f"at most {words_for(inner)} words" in line, (section.id, part.id)


@pytest.mark.parametrize("template", ["tid", "spec"])
def test_every_section_fits_the_embedded_budget(template: str) -> None:
    """At the embedded default (its reply limit, Qwen's rate) every section's worst case fits."""
    budget = char_budget(default_max_tokens("local"), chars_per_token("local"))
    for section in get_template(template).sections:
        fitted = fit_schema(section_model(section).model_json_schema(), budget)
        assert worst_case_chars(fitted) <= budget, section.id


def test_known_models_carry_their_rate_and_files_the_cautious_one() -> None:
    assert chars_per_token("local") == MODELS["qwen-1.5b"].chars_per_token == 2.5
    assert chars_per_token("local:smollm2") == CHARS_PER_TOKEN
    assert chars_per_token("local:/models/other.gguf") == CHARS_PER_TOKEN
    assert char_budget(1000, 2.5) > char_budget(1000)


def _reply_texts(interaction: dict[str, Any]) -> tuple[str, int, str] | None:
    """(text, output tokens, why it stopped) of one recorded chat reply, either protocol."""
    reply = json.loads(interaction["response"]["body"]["string"])
    usage = reply.get("usage") or {}
    if "choices" in reply:
        text = "".join(c["message"].get("content") or "" for c in reply["choices"])
        tokens = usage.get("completion_tokens")
        stop = str(reply["choices"][0].get("finish_reason"))
    else:
        text = "".join(c.get("text", "") for c in reply.get("content", []))
        tokens = usage.get("output_tokens")
        stop = str(reply.get("stop_reason"))
    return (text, int(tokens), stop) if text and tokens else None


# Qwen writes each digit as a token of its own: a run of numbers is denser than
# any rate for prose and code (a recorded reply counting "200, 201, ... 412," in
# a test's parametrize list: 1,830 characters in 1,280 tokens).
_NUMBERS_SHARE = 0.25


def test_recorded_qwen_replies_never_ran_below_its_budgeted_rate() -> None:
    """The rate the budget assumes, checked on every reply Qwen wrote in a recorded run.

    A reply of c characters fits a budget made from max_tokens m when
    c <= m * rate - 150 (`char_budget`); it closes in time if it took at most
    m tokens, so every reply's tokens * rate must be at most c + 150. Replies
    mostly of digits are denser by nature; what the budget is for, every reply
    closing before its token limit, is checked on all of them.
    """
    rate = MODELS["qwen-1.5b"].chars_per_token
    replies: list[tuple[str, int, str]] = []
    for meta_path in CASSETTES.glob("*.yaml.meta.json"):
        if not json.loads(meta_path.read_text())["model"].endswith(":qwen-1.5b"):
            continue
        cassette = yaml.safe_load(
            meta_path.with_name(meta_path.name[: -len(".meta.json")]).read_text()
        )
        for interaction in cassette["interactions"]:
            found = _reply_texts(interaction)
            if found is not None:
                replies.append(found)
    assert len(replies) >= 10, "no cassette recorded with qwen-1.5b holds its replies"
    assert [stop for _, _, stop in replies if stop in ("length", "max_tokens")] == []
    words = [(t, n) for t, n, _ in replies if sum(c.isdigit() for c in t) < _NUMBERS_SHARE * len(t)]
    assert len(words) >= len(replies) - 2
    over = [(len(text), tokens) for text, tokens in words if tokens * rate > len(text) + 150]
    assert over == []


def test_a_compatible_server_serving_a_catalog_model_gets_its_output_rate() -> None:
    """`openai:qwen-1.5b` (how scripts/record-cassettes names the served model) budgets as
    `local` does; an unknown name keeps the cautious default."""
    import asyncio

    from agent.providers import open_provider
    from agent.providers.fitting import CHARS_PER_TOKEN
    from agent.providers.local import chars_per_token

    async def rate(model_id: str) -> float:
        provider = await open_provider(model_id, base_url="http://127.0.0.1:9/v1", env={})
        try:
            return float(getattr(provider, "chars_per_token"))  # noqa: B009
        finally:
            await provider.aclose()

    assert asyncio.run(rate("openai:qwen-1.5b")) == chars_per_token("local:qwen-1.5b") > 2
    assert asyncio.run(rate("openai:qwen2.5-coder:7b")) == CHARS_PER_TOKEN
