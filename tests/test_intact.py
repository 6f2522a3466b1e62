"""Text stopped at its length bound and code that does not parse never reach the document.

Fake-provider tests: they count the calls drafting makes, and read what it keeps.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agent.core.templates import Section, Template
from agent.document.assemble import render_section
from agent.document.blocks import CUT_MARK, parsing_prefix
from agent.document.intact import (
    apply_trims,
    find_cuts,
    find_unfinished,
)
from agent.document.lints import code_error
from agent.document.mend import LOOP_MARK, holds_tree, loop_start, restore_code, tidy_code
from agent.draft.plan import SectionDraft
from agent.draft.prompting import lines_for, words_for
from agent.draft.sections import draft_section
from agent.providers.base import Message, Reply
from agent.providers.fake import FakeProvider

TEMPLATE = Template.model_validate(
    {
        "name": "mini",
        "version": "1",
        "title": "Mini Document",
        "description": "A one-section template for tests.",
        "doc_title": "{feature} Mini",
        "doc_kind": "MINI",
        "system": "You write mini documents.",
        "sections": [
            {
                "id": "core",
                "title": "Core",
                "guidance": "The core of it.",
                "parts": [
                    {
                        "id": "summary",
                        "title": "Summary",
                        "kind": "text",
                        "guidance": "What it does.",
                        "max_chars": 80,
                    },
                    {
                        "id": "steps",
                        "title": "Steps",
                        "kind": "list",
                        "guidance": "The steps.",
                        "max_items": 3,
                        "max_chars": 180,
                    },
                    {
                        "id": "details",
                        "title": "Details",
                        "kind": "text",
                        "guidance": "Details, with a config example.",
                        "max_chars": 400,
                    },
                    {
                        "id": "example",
                        "title": "Example",
                        "kind": "code",
                        "language": "python",
                        "guidance": "An example.",
                        "max_chars": 200,
                    },
                ],
            }
        ],
    }
)
SECTION = TEMPLATE.sections[0]
MESSAGES = [
    Message(role="system", content="shared prefix: template and TDD"),
    Message(role="user", content="write the section"),
]
GOOD_CODE = "def send(event: str) -> bool:\n    return bool(event)"
# 80 characters exactly: the summary's bound, stopped mid-word.
CUT = "The feature uses Redis for queueing, which is fast for high throughput and low l"
assert len(CUT) == 80


def reply(
    summary: str,
    *,
    steps: list[str] | None = None,
    code: str = GOOD_CODE,
    details: str = "Plain words.",
) -> str:
    return json.dumps(
        {
            "summary": summary,
            "steps": steps or ["Queue the event.", "Deliver it."],
            "details": details,
            "example": {"intro": "Sending one event.", "path": "", "code": code},
            "tdd_refs": ["Overview"],
        }
    )


def draft(provider: FakeProvider, events: list[Any] | None = None) -> SectionDraft:
    return asyncio.run(
        draft_section(
            provider,
            TEMPLATE,
            SECTION,
            MESSAGES,
            max_tokens=1000,
            on_event=(events.append if events is not None else lambda _e: None),
        )
    )


def test_text_stopped_at_its_bound_is_asked_again_once_that_field_only() -> None:
    provider = FakeProvider(
        [reply(CUT), json.dumps({"summary": "Redis queues the events for delivery."})]
    )
    result = draft(provider)
    assert len(provider.requests) == 2
    again = provider.requests[1]
    assert again.prompt_id == "rewrite_cut"
    # Only the cut field is asked for, not the whole section again.
    assert set(again.json_schema["properties"]) == {"summary"}
    assert again.json_schema["properties"]["summary"]["maxLength"] == 80
    ask = again.messages[-1].content
    assert f'- summary: at most {words_for(80)} words. As it stopped: "{CUT}"' in ask
    assert "cut off" in ask
    # The draft's own request comes first, so the prompt cache holds it; the
    # whole reply is not sent again, only the quoted fields.
    assert again.messages == [*MESSAGES, again.messages[-1]]
    assert result.content["summary"] == "Redis queues the events for delivery."
    assert result.content["steps"] == ["Queue the event.", "Deliver it."]
    assert result.notes == []


def test_text_still_cut_after_the_reask_goes_back_to_its_last_sentence() -> None:
    again = "Redis queues events. It is optimized for high throughput and low latency of deli"
    assert len(again) == 80
    provider = FakeProvider([reply(CUT), json.dumps({"summary": again})])
    result = draft(provider)
    assert len(provider.requests) == 2
    assert result.content["summary"] == "Redis queues events."
    assert any("summary" in n and "cut off" in n for n in result.notes)
    markdown = render_section(TEMPLATE, SECTION, result.content)
    assert "deli" not in markdown


def test_a_list_item_cut_twice_without_a_sentence_is_left_out() -> None:
    item = "x" * 59 + " y"  # items are bounded at 60 characters
    steps = ["Queue the event.", item[:60]]
    provider = FakeProvider([reply("Fine.", steps=steps), json.dumps({"steps_item_2": item[:60]})])
    result = draft(provider)
    assert "steps_item_2 (steps item 2): at most" in provider.requests[1].messages[-1].content
    assert result.content["steps"] == ["Queue the event."]


def test_text_stopped_at_its_bound_with_a_sentence_to_keep_is_trimmed_without_a_call() -> None:
    cut = "Redis queues events. It is optimized for high throughput and low latency of deli"
    assert len(cut) == 80
    provider = FakeProvider([reply(cut)])
    result = draft(provider)
    assert len(provider.requests) == 1
    assert result.content["summary"] == "Redis queues events."
    assert any("summary" in n and "kept the first 20 characters" in n for n in result.notes)


def test_an_empty_or_unusable_rewrite_leaves_the_text_out_visibly() -> None:
    for second in (json.dumps({"summary": ""}), "not json"):
        provider = FakeProvider([reply(CUT), second])
        result = draft(provider)
        # One call: a rewrite that cannot be used is not asked for again.
        assert [r.prompt_id for r in provider.requests[1:]] == ["rewrite_cut"]
        assert result.content["summary"].startswith("> **Note:** The model's text for summary")


def test_text_cut_twice_with_no_sentence_to_keep_is_left_out_visibly() -> None:
    no_sentence = ("word " * 16 + "word")[:80]
    provider = FakeProvider([reply(no_sentence), json.dumps({"summary": no_sentence})])
    result = draft(provider)
    assert len(provider.requests) == 2
    markdown = render_section(TEMPLATE, SECTION, result.content)
    assert "word word" not in markdown
    assert "> **Note:** The model's text for summary was cut off at its limit of 80" in markdown
    assert any("summary" in n and "left out" in n for n in result.notes)


def test_text_that_ends_a_sentence_at_its_bound_is_not_cut() -> None:
    whole = "A" * 78 + "."
    assert len(whole) == 79
    provider = FakeProvider([reply(whole + " ")])
    assert draft(provider).content["summary"] == whole + " "
    assert len(provider.requests) == 1


class FittingProvider(FakeProvider):
    """A fake that, like the embedded model's grammar, lowers string bounds to fit a budget."""

    def schema_budget(self, max_tokens: int) -> int:
        return 400


def test_the_fitted_bound_is_the_one_that_counts() -> None:
    # The fitted schema holds the summary to far fewer than 80 characters.
    from agent.draft.plan import section_schema
    from agent.providers.fitting import fit_schema

    fitted = fit_schema(section_schema(SECTION)[1], 400)
    bound = fitted["properties"]["summary"]["maxLength"]
    assert bound < 80
    cut = CUT[:bound]
    # Code inside its own fitted bound (GOOD_CODE is not: a grammar never lets it).
    content = json.loads(reply(cut, code="sent = True"))
    assert [c.name for c in find_cuts(SECTION, content, fitted)] == ["summary"]
    provider = FittingProvider(
        [reply(cut, code="sent = True"), json.dumps({"summary": "Redis queues events."})]
    )
    assert draft(provider).content["summary"] == "Redis queues events."
    assert provider.requests[1].json_schema["properties"]["summary"]["maxLength"] == bound
    assert f"at most {words_for(bound)} words" in provider.requests[1].messages[-1].content


BROKEN = "def send(event: str) -> bool:\n    return bool(event"


def test_code_that_does_not_parse_gets_one_repair_call() -> None:
    provider = FakeProvider([reply("Fine.", code=BROKEN), json.dumps({"code": GOOD_CODE})])
    result = draft(provider)
    assert len(provider.requests) == 2
    repair = provider.requests[1]
    assert repair.prompt_id == "repair_code"
    # The shared prefix first, so the prompt cache holds.
    assert repair.messages[0] == MESSAGES[0]
    assert "does not parse" in repair.messages[-1].content
    assert "return bool(event" in repair.messages[-1].content
    # It asks for the whole block from its first line: small models otherwise write the tail.
    assert "again, corrected, from its first line\n(def send(event: str) -> bool:)" in (
        repair.messages[-1].content
    )
    assert result.content["example"]["code"] == GOOD_CODE
    assert any("repaired" in n for n in result.notes)


def test_code_still_broken_after_its_repair_is_dropped_with_a_note_in_the_document() -> None:
    provider = FakeProvider([reply("Fine.", code=BROKEN), json.dumps({"code": BROKEN + "\n"})])
    result = draft(provider)
    assert len(provider.requests) == 2  # one repair, not asked again
    markdown = render_section(TEMPLATE, SECTION, result.content)
    assert "return bool(event" not in markdown
    assert "```python" not in markdown
    assert "> **Note:** The python example for Example was left out" in markdown
    assert "Sending one event." in markdown


# Stopped mid-statement, as Qwen2.5-Coder-1.5B stops code at its bound.
LONG_CUT = (
    "def send(event: str) -> bool:\n    payload = event.strip()\n    size = len(payload)\n"
    "    ok = size > 0\n    return bool(ok and payl"
)


def test_a_failed_repair_keeps_the_longest_start_that_parses_marked_where_it_stops() -> None:
    # The repair wrote only the missing tail: not the block, so it is not used.
    tail = json.dumps({"code": "    return bool(ok and payload)"})
    provider = FakeProvider([reply("Fine.", code=LONG_CUT), tail])
    result = draft(provider)
    assert len(provider.requests) == 2  # no call beyond the one repair
    code = result.content["example"]["code"]
    assert code == LONG_CUT.rsplit("\n", 1)[0] + "\n" + CUT_MARK
    assert code_error("python", code) is None
    assert not result.content["example"].get("dropped")
    assert any("kept its first 4 lines" in n for n in result.notes)
    markdown = render_section(TEMPLATE, SECTION, result.content)
    assert CUT_MARK in markdown and "return bool(ok and payl" not in markdown


# The Spec's Core Entities, recorded 2026-12-03: imports, then code cut and
# not repaired; the start that parses was the imports, shipped as the example.
IMPORTS = "".join(f"import m{n}\n" for n in range(4))
IMPORTS_THEN_CUT = IMPORTS + "class Event(Base):\n    id = Column(Intege"


def test_a_failed_repair_whose_start_is_imports_alone_gets_one_call_for_the_code() -> None:
    written = "class Event:\n    id: int = 0"
    provider = FakeProvider(
        [
            reply("Fine.", code=IMPORTS_THEN_CUT),
            json.dumps({"code": IMPORTS_THEN_CUT}),  # the repair, cut the same way
            json.dumps({"code": written}),
        ]
    )
    result = draft(provider)
    assert [r.prompt_id for r in provider.requests] == [
        "draft_section",
        "repair_code",
        "write_code",
    ]
    # The imports are not shown (the model would write them again): only asked after.
    assert "import m0" not in provider.requests[2].messages[-1].content
    assert result.content["example"]["code"] == IMPORTS + "\n" + written
    assert any("held only import lines; written" in n for n in result.notes)


def test_imports_alone_again_after_that_call_are_left_out_with_a_note() -> None:
    provider = FakeProvider(
        [
            reply("Fine.", code=IMPORTS_THEN_CUT),
            json.dumps({"code": IMPORTS_THEN_CUT}),
            json.dumps({"code": IMPORTS}),
        ]
    )
    result = draft(provider)
    assert len(provider.requests) == 3  # no round beyond the second
    markdown = render_section(TEMPLATE, SECTION, result.content)
    assert "import m0" not in markdown
    assert "held only import lines, and was left out" in markdown


def test_code_written_for_comments_that_ends_as_imports_alone_is_left_out() -> None:
    provider = FakeProvider(
        [
            reply("Fine.", code="# send the event\n# then record it"),
            json.dumps({"code": IMPORTS_THEN_CUT}),  # written: imports, then cut
            json.dumps({"code": IMPORTS_THEN_CUT}),  # its repair
        ]
    )
    result = draft(provider)
    assert [r.prompt_id for r in provider.requests] == [
        "draft_section",
        "write_code",
        "repair_code",
    ]
    markdown = render_section(TEMPLATE, SECTION, result.content)
    assert "import m0" not in markdown
    assert "held only import lines, and was left out" in markdown


def test_a_fence_in_text_whose_parsing_start_is_imports_alone_is_dropped() -> None:
    fence = f"Models:\n\n```python\n{IMPORTS_THEN_CUT}\n```"
    provider = FakeProvider([reply("Fine.", details=fence), json.dumps({"code": IMPORTS_THEN_CUT})])
    result = draft(provider)
    assert len(provider.requests) == 2  # the repair; a text part has no code to ask for
    assert "import m0" not in result.content["details"]


def test_code_on_one_line_cut_at_its_end_keeps_its_start_with_the_breaks_put_back() -> None:
    # The 2026-12-03 recording: a class on one line, cut off; the repair wrote it so again.
    one_line = LONG_CUT.replace("\n", "")
    again = json.dumps({"code": one_line})
    provider = FakeProvider([reply("Fine.", code=one_line), again])
    result = draft(provider)
    assert len(provider.requests) == 2
    assert result.content["example"]["code"] == LONG_CUT.rsplit("\n", 1)[0] + "\n" + CUT_MARK
    assert any("kept its first 4 lines" in n for n in result.notes)


def test_a_kept_start_must_stand_for_the_block() -> None:
    # Too little parses (fewer than 3 statement lines, or under a third of them).
    assert parsing_prefix("python", BROKEN, BROKEN.split("\n")[0]) is None
    # A fragment that does not start where the block started.
    assert parsing_prefix("python", LONG_CUT, "class Other:") is None
    # No comment syntax to mark the stop with.
    assert parsing_prefix("json", '{"a": 1,\n"b": 2,\n"c": 3,\n"d"', '{"a": 1,') is None
    kept = parsing_prefix("python", LONG_CUT, "def send(event: str) -> bool:")
    assert kept is not None and kept.endswith(CUT_MARK)


def test_a_kept_method_without_its_class_still_parses_with_its_mark() -> None:
    # The 2026-12-03 recording: a method given alone, indented as in its class.
    method = (
        "    def __init__(self, client, signer):\n"
        "        self.client = client\n"
        "        self.signer = signer\n"
        "        self.retries = 0\n"
        "        self.limit = Limit(\n"
    )
    kept = parsing_prefix("python", method, "    def __init__(self, client, signer):")
    assert kept is not None and code_error("python", kept) is None


def test_an_unusable_repair_reply_drops_the_code_after_one_call() -> None:
    provider = FakeProvider([reply("Fine.", code=BROKEN), Reply(text="not json")])
    result = draft(provider)
    assert len(provider.requests) == 2
    assert result.content["example"]["code"] == ""
    assert result.content["example"]["dropped"]


# Qwen2.5-Coder-1.5B under the JSON grammar: the line breaks dropped, their indentation kept.
FLATTENED = (
    "def send(event: str) -> bool:    # 1. Clean it    payload = event.strip()"
    "    if not payload:        return False    return True"
)


def test_code_whose_line_breaks_were_lost_is_mended_without_a_call() -> None:
    provider = FakeProvider([reply("Fine.", code=FLATTENED)])
    result = draft(provider)
    assert len(provider.requests) == 1
    code = result.content["example"]["code"]
    assert code.split("\n") == [
        "def send(event: str) -> bool:",
        "    # 1. Clean it",
        "    payload = event.strip()",
        "    if not payload:",
        "        return False",
        "    return True",
    ]
    assert any("line breaks" in n and "no call" in n for n in result.notes)


def test_restoring_code_only_undoes_the_two_slips_and_only_when_that_parses() -> None:
    assert restore_code("python", "`relay/service.py`\nimport os\nx = 1") == (
        "# relay/service.py\nimport os\nx = 1"
    )
    assert restore_code("toml", "File: `pyproject.toml`\n[tool]\na = 1") == (
        "# File: pyproject.toml\n[tool]\na = 1"
    )
    # Code that parses is left as written, aligned comments and all.
    assert restore_code("python", "x = 1    # one") is None
    # A break that does not make it parse is the repair call's, as is json (no comments).
    assert restore_code("python", "def f(x):    return (x") is None
    assert restore_code("json", 'config.json\n{"a": 1}') is None
    # In yaml a run of spaces is not a lost break.
    assert restore_code("yaml", "a: [1,    2") is None


def test_a_repair_that_makes_the_same_slip_is_mended_too() -> None:
    provider = FakeProvider(
        [
            reply("Fine.", code=BROKEN),
            json.dumps({"code": "def send(event: str) -> bool:    ok = event    return bool(ok)"}),
        ]
    )
    result = draft(provider)
    assert len(provider.requests) == 2
    assert result.content["example"]["code"] == (
        "def send(event: str) -> bool:\n    ok = event\n    return bool(ok)"
    )


def test_code_that_parses_costs_no_extra_call() -> None:
    provider = FakeProvider([reply("Fine.")])
    draft(provider)
    assert len(provider.requests) == 1


def test_code_error_knows_the_languages_it_parses() -> None:
    assert code_error("python", "def f(:") is not None
    assert code_error("json", '{"a": 1') is not None
    assert code_error("yaml", "a: [1, 2") is not None
    assert code_error("toml", "a = ") is not None
    assert code_error("bash", "if then fi ((") is None
    assert code_error("python", GOOD_CODE) is None


DETAILS = 'The settings file:\n\n```json\n{"retries": 3,\n```\n\nThat is all.'


def test_a_broken_fenced_block_inside_text_is_repaired_in_place() -> None:
    provider = FakeProvider(
        [reply("Fine.", details=DETAILS), json.dumps({"code": '{"retries": 3}'})]
    )
    result = draft(provider)
    assert len(provider.requests) == 2
    assert '"retries": 3,' in provider.requests[1].messages[-1].content
    assert result.content["details"] == (
        'The settings file:\n\n```json\n{"retries": 3}\n```\n\nThat is all.'
    )


def test_a_broken_fenced_block_inside_text_that_stays_broken_becomes_a_note() -> None:
    provider = FakeProvider([reply("Fine.", details=DETAILS), json.dumps({"code": "{"})])
    result = draft(provider)
    assert len(provider.requests) == 2
    details = result.content["details"]
    assert "```" not in details and "retries" not in details
    assert details.startswith("The settings file:\n\n> **Note:** The json example for Details")
    assert details.endswith("\n\nThat is all.")


def test_unfinished_prose_a_few_characters_short_of_its_bound_is_a_cut() -> None:
    # Seen on Qwen2.5-Coder: "... with overridable" stopped at 87 of its 90 characters
    # (the grammar and Python count some characters differently).
    from agent.draft.plan import section_schema

    schema = section_schema(SECTION)[1]
    short = CUT[:-3].rstrip()
    assert 76 <= len(short) < 80
    cuts = find_cuts(SECTION, {"summary": short}, schema)
    assert [c.path for c in cuts] == [("summary",)]
    # Far from its bound, unfinished prose is the model's own choice, not a cut.
    assert find_cuts(SECTION, {"summary": CUT[:40]}, schema) == []
    # A sentence that ends near its bound is whole.
    assert find_cuts(SECTION, {"summary": CUT[:-5] + "."}, schema) == []


def test_a_list_item_a_few_characters_short_of_its_bound_is_a_cut() -> None:
    # Seen on Qwen2.5-Coder: items looping on file names stopped at 129 of 130.
    from agent.draft.plan import section_schema

    schema = section_schema(SECTION)[1]
    loop = ("relay/worker.py, " * 4)[:59]
    assert len(loop) == 59  # items are bounded at 60 characters
    cuts = find_cuts(SECTION, {"steps": ["Queue the event.", loop]}, schema)
    assert [(c.path, c.kind) for c in cuts] == [(("steps", 1), "item")]
    assert find_cuts(SECTION, {"steps": [loop[:40]]}, schema) == []


def test_prose_the_model_ended_mid_word_goes_back_to_its_last_sentence_without_a_call() -> None:
    ended = "Retries use backoff. Each one is logged for the webh\u63a5"  # bound: 80
    provider = FakeProvider([reply(ended, details="Whole sentences only: this ends.")])
    result = draft(provider)
    assert len(provider.requests) == 1
    assert result.content["summary"] == "Retries use backoff."
    assert result.content["details"] == "Whole sentences only: this ends."
    assert any("summary: ended mid-sentence; kept the first 20" in n for n in result.notes)


def test_unfinished_prose_is_only_a_paragraph_that_stops_on_a_letter() -> None:
    def unfinished(**content: Any) -> list[tuple[str | int, ...]]:
        return [c.path for c in find_unfinished(SECTION, content)]

    assert unfinished(summary="It ends with a colon:") == []
    assert unfinished(summary="It ends in brackets (the queue)") == []
    assert unfinished(details="Steps:\n\n- queue the event\n- deliver it") == []
    assert unfinished(details="A table:\n\n| a | b |\n|---|---|\n| 1 | 2 |") == []
    assert unfinished(details="First.\n\nThen the worker picks up the") == [("details",)]
    assert unfinished(details="First.\n\nThen the subsequent delivery of,") == [("details",)]
    assert unfinished(details="Retries use exponential back-off") == [("details",)]
    assert unfinished(details="It uses a read-through cache (Redis)") == []
    assert unfinished(details="It reads and writes its data in the`") == [("details",)]
    assert unfinished(example={"intro": "Sending one event with the", "code": "x = 1"}) == [
        ("example", "intro")
    ]
    # A list item may end on a name, but not on a comma, a bracket or "and".
    assert unfinished(steps=["Deliver it with httpx", "Sign it with HMAC-SHA256"]) == []
    assert unfinished(steps=["The worker can retry", "It will use arq."]) == []
    looped = "Routing (FastAPI's routing, FastAPI's models, FastAPI's retrying, arq),"
    for item in (
        looped,
        "Queue the event and",
        "Retry with (",
        "Keep the; order;",
        "As follows:",
        "Run the dead-",
        "The system logs the error and retries it. If the retry fails, it",
        "Run the container with `docker run -d --name=",
        "The team will use",
        "Retries are capped and will",
    ):
        assert unfinished(steps=["Queue it.", item]) == [("steps", 1)], item
    # A sentence, then one that stops, goes back to the sentence; an abbreviation is no sentence.
    trailing = ["The system logs the error and retries it. If the retry fails, it"]
    kept, _ = apply_trims({"steps": list(trailing)}, find_unfinished(SECTION, {"steps": trailing}))
    assert kept["steps"] == ["The system logs the error and retries it."]
    assert unfinished(steps=["Cache hot rows in a store, e.g. Redis"]) == []
    content, _ = apply_trims(
        {"steps": ["Queue it.", looped]}, find_unfinished(SECTION, {"steps": ["Queue it.", looped]})
    )
    assert content["steps"] == ["Queue it."]
    # Text stopped with no sentence to keep is left out, with a note that says why.
    result = find_unfinished(SECTION, {"summary": "no sentence at all"})
    content, notes = apply_trims({"summary": "no sentence at all"}, result)
    assert content["summary"].startswith("> **Note:** The model's text for summary ended")
    assert notes == ["summary: ended mid-sentence; left out"]


def test_a_diagram_role_stopped_at_its_bound_is_trimmed_to_a_whole_word_not_left_out() -> None:
    from agent.core.templates import get_template
    from agent.draft.plan import section_schema

    section = get_template("tid").section("integration_points")
    schema = section_schema(section)[1]
    role_def = schema["$defs"]["integration_points_integration_diagram_component"]
    bound = role_def["properties"]["responsibility"]["maxLength"]
    role = ("queues webhook deliveries and retries failed ones with backoff " * 3)[:bound]
    content = {
        "integration_diagram": {
            "components": [{"name": "DeliveryWorker", "responsibility": role}],
            "edges": [],
        }
    }
    [cut] = find_cuts(section, content, schema)
    assert cut.kind == "cell"
    trimmed, notes = apply_trims(content, [cut])
    kept = trimmed["integration_diagram"]["components"][0]["responsibility"]
    assert kept and role.startswith(kept) and not kept.endswith(" ")
    assert role[len(kept)] == " "  # a whole word, not a piece of one
    assert "kept the first" in notes[0]


def test_a_tree_comment_a_character_short_of_its_bound_is_still_a_cut() -> None:
    """Qwen2.5-Coder-1.5B's "data repositories for endpoints and deliver" stopped at 43 of 44."""
    from agent.core.templates import get_template
    from agent.draft.plan import section_schema
    from agent.providers.fitting import fit_schema

    section = get_template("tid").section("code_structure")
    schema = fit_schema(section_schema(section)[1], 3850)
    row = schema["$defs"]["code_structure_directory_structure_file"]["properties"]
    bound = row["holds"]["maxLength"]
    holds = ("data repositories for endpoints and deliveries " * 3)[: bound - 1].rstrip()
    whole = "data repositories"
    content = {
        "directory_structure": [
            {"path": "relay/repositories.py", "holds": holds},
            {"path": "relay/db.py", "holds": whole},
        ]
    }
    [cut] = find_cuts(section, content, schema)
    assert (cut.kind, cut.path) == ("cell", ("directory_structure", 0, "holds"))
    trimmed, _ = apply_trims(content, [cut])
    kept = trimmed["directory_structure"][0]["holds"]
    assert holds.startswith(kept) and holds[len(kept)] == " "
    assert trimmed["directory_structure"][1]["holds"] == whole


def test_code_stopped_at_its_bound_gets_a_repair_with_room_to_finish() -> None:
    cut = ("def send(event: str) -> bool:\n    values = [" + "event, " * 40)[:200]
    provider = FakeProvider([reply("Fine.", code=cut), json.dumps({"code": GOOD_CODE})])
    result = draft(provider)
    # Code we can parse is the repair's: no rewrite call before it.
    assert [r.prompt_id for r in provider.requests[1:]] == ["repair_code"]
    repair = provider.requests[1]
    # Twice the part's bound: asked to be whole in the same room, it was cut again.
    assert repair.json_schema["properties"]["code"]["maxLength"] == 400
    assert f"At most {lines_for(400)} lines, never over 400 characters" in " ".join(
        repair.messages[-1].content.split()
    )
    assert result.content["example"]["code"] == GOOD_CODE


def test_an_item_with_no_sentence_keeps_its_clauses_up_to_the_last_break() -> None:
    from agent.document.intact import Cut

    item = (
        "**Order of Implementation**: `Signer` first, then `RetryPolicy`, then the "
        "worker, then the API that enqueues deliveries and the"
    )
    cut = Cut(path=("steps", 0), bound=len(item), kind="item")
    content, notes = apply_trims({"steps": [item]}, [cut])
    assert content["steps"] == [
        "**Order of Implementation**: `Signer` first, then `RetryPolicy`, then the worker."
    ]
    assert notes and "kept the first" in notes[0]
    # Not when that would leave less than half, open a bracket, or split a name.
    for unsafe in (
        "Queue, then deliver the events to every endpoint the producer registered with",
        "Routing (FastAPI's routing, FastAPI's models, FastAPI's retrying, arq),",
    ):
        content, _ = apply_trims({"steps": ["Queue it.", unsafe]}, [Cut(("steps", 1), 0, "item")])
        assert content["steps"] == ["Queue it."], unsafe


BASH = Section.model_validate(
    {
        "id": "tools",
        "title": "Tools",
        "guidance": "The scripts.",
        "parts": [
            {
                "id": "run",
                "title": "Run",
                "kind": "code",
                "language": "bash",
                "guidance": "How to run it.",
                "max_chars": 400,
            }
        ],
    }
)
# A statement first: a block of imports alone is no code (`write_hollow` asks for it).
LOOP_RUN = "from api import Auth\nfrom api import Scope\n"
LOOPED = "log = 'relay'\n" + LOOP_RUN * 3 + "from api import Sc"


def test_a_repetition_loop_in_code_is_cut_back_to_its_first_copy_without_a_call() -> None:
    provider = FakeProvider([reply("Fine.", code=LOOPED)])
    result = draft(provider)
    assert len(provider.requests) == 1
    assert result.content["example"]["code"] == (
        "log = 'relay'\nfrom api import Auth\nfrom api import Scope\n" + LOOP_MARK
    )
    assert any("repeated its python code from line 4" in n for n in result.notes)


def test_lines_that_repeat_less_than_three_times_or_hold_little_are_not_a_loop() -> None:
    assert loop_start("a = 1\nb = 2\na = 1\nb = 2\nc = 3") is None
    assert loop_start("x = [\n    0,\n    0,\n    0,\n    0,\n]") is None
    assert loop_start("def f(): ...\n" * 3) == 1


def test_fences_a_model_wrote_inside_a_code_block_are_taken_out() -> None:
    markdown_in_bash = "#### Setup\n```bash\nuv sync\n```\n#### Run\n```bash\npytest\n```"
    content, notes = tidy_code(BASH, {"run": {"intro": "", "path": "", "code": markdown_in_bash}})
    assert content["run"]["code"].strip("\n") == "#### Setup\nuv sync\n#### Run\npytest"
    assert notes == []
    # A fence inside a string is not a fence line; in a markdown part a fence is content.
    content, _ = tidy_code(BASH, {"run": {"intro": "", "path": "", "code": 'echo "```"'}})
    assert content["run"]["code"] == 'echo "```"'
    markdown = BASH.model_copy(
        update={"parts": [BASH.parts[0].model_copy(update={"language": "markdown"})]}
    )
    content, _ = tidy_code(markdown, {"run": {"intro": "", "path": "", "code": markdown_in_bash}})
    assert content["run"]["code"] == markdown_in_bash


def test_drafting_leaves_out_a_list_item_given_twice_without_a_call() -> None:
    provider = FakeProvider([reply("Fine.", steps=["Queue the event.", "Queue the event."])])
    result = draft(provider)
    assert len(provider.requests) == 1
    assert result.content["steps"] == ["Queue the event."]
    assert "steps item 2: the same as an item before it; left out" in result.notes


def test_code_that_is_only_comments_is_asked_for_once_with_what_it_describes() -> None:
    comments = "# Signer: signs each payload\n# RetryPolicy: backoff between attempts\n"
    provider = FakeProvider([reply("Fine.", code=comments), json.dumps({"code": GOOD_CODE})])
    result = draft(provider)
    # Comments parse: not the code repair's "does not parse", its own ask.
    assert [r.prompt_id for r in provider.requests[1:]] == ["write_code"]
    ask = " ".join(provider.requests[1].messages[-1].content.split())
    assert "written as comments only" in ask and "# RetryPolicy: backoff" in ask
    assert "What the block must show: An example." in ask
    assert provider.requests[1].messages[0] == provider.requests[0].messages[0]  # shared prefix
    assert result.content["example"]["code"] == GOOD_CODE
    assert "example: the python block held only comments; written" in result.notes


def test_code_that_is_only_comments_twice_is_left_out_with_a_note() -> None:
    provider = FakeProvider(
        [reply("Fine.", code="# purpose\n# purpose\n"), json.dumps({"code": "# still\n"})]
    )
    result = draft(provider)
    assert len(provider.requests) == 2
    assert result.content["example"]["code"] == ""
    assert "held no code" in result.content["example"]["dropped"]
    markdown = render_section(TEMPLATE, SECTION, result.content)
    assert "# purpose" not in markdown and "> **Note:** The model's python for Example" in markdown


def test_code_written_for_comments_that_does_not_parse_goes_on_to_the_repair() -> None:
    provider = FakeProvider(
        [
            reply("Fine.", code="# purpose\n"),
            json.dumps({"code": "def send(event:\n"}),
            json.dumps({"code": GOOD_CODE}),
        ]
    )
    result = draft(provider)
    assert [r.prompt_id for r in provider.requests[1:]] == ["write_code", "repair_code"]
    assert result.content["example"]["code"] == GOOD_CODE


def test_a_directory_tree_in_a_python_block_is_left_out_without_a_repair_call() -> None:
    tree = "relay/\n├── delivery/\n│   ├── service.py\n│   └── worker.py\n└── retry.py"
    provider = FakeProvider([reply("Fine.", code=tree)])
    result = draft(provider)
    assert len(provider.requests) == 1
    assert "drew a directory tree there instead of python" in result.content["example"]["dropped"]
    assert not holds_tree("python", GOOD_CODE)
    assert not holds_tree("text", tree)  # where a tree belongs


def test_a_cell_with_a_whole_sentence_keeps_it_and_one_with_none_closes_no_span() -> None:
    from agent.document.intact import Cut, trim

    cell = Cut(path=("error_codes", 0, "meaning"), bound=40, kind="cell")
    # The Spec recording's cells stopped at 40 characters like this one.
    assert trim(cell, "Redis is down on publish. The system") == "Redis is down on publish."
    # "e.g." alone is no sentence to keep: back to the last whole word instead.
    assert trim(cell, "e.g. REST over HTTPS with a retry on") == "e.g. REST over HTTPS with a retry"
    # A code span or bracket the cut left open would garble the table row.
    assert trim(cell, "Enqueue latency (`POST /api/v1/events") == "Enqueue latency"
    assert trim(cell, "Throughput per worker (receiver p50 50") == "Throughput per worker"
    # Nor a clause the cut broke off (the Spec recording of tid 1.6's day).
    assert trim(cell, "Retry the operation later or contact the sys") == "Retry the operation later"
    assert trim(cell, "Restart the worker or contact the admin now") == (
        "Restart the worker or contact the admin"
    )


def test_a_list_whose_every_item_is_left_out_says_which_limit_cut_them() -> None:
    from agent.document.intact import Cut

    items = ["Run the migration that adds the deliveries table and", "Roll out the worker and"]
    cuts = [Cut(path=("steps", i), bound=100, kind="item") for i in range(2)]
    content, notes = apply_trims({"steps": list(items)}, cuts)
    # The run of 2026-12-03 said "its limit of 0 characters": the list's, not its items'.
    assert content["steps"] == [
        "*The model's text for steps was cut off at its limit of 100 characters twice and "
        "was left out.*"
    ]
    assert len(notes) == 2 and notes[0].endswith("; left out")


def test_a_line_that_repeats_itself_is_cut_after_its_first_copy_where_no_repair_follows() -> None:
    from agent.document.mend import cut_line_loops

    section = Section.model_validate(
        {
            "id": "tools",
            "title": "Tools",
            "guidance": "Setup.",
            "parts": [
                {
                    "id": "script",
                    "title": "Script",
                    "kind": "code",
                    "language": "bash",
                    "guidance": "A setup script.",
                },
                {
                    "id": "example",
                    "title": "Example",
                    "kind": "code",
                    "language": "python",
                    "guidance": "An example.",
                },
            ],
        }
    )
    looped = "pip install" + " --trusted-host pypi.python.org" * 25 + " --pip"
    python = "x = [" + "'pypi.python.org', " * 25 + "]"
    content = {
        "script": {"intro": "", "path": "", "code": f"set -e\n{looped}\npytest\n# {'=' * 60}"},
        "example": {"intro": "", "path": "", "code": python},
    }
    out, notes = cut_line_loops(section, content)
    assert out["script"]["code"] == (
        f"set -e\npip install --trusted-host pypi.python.org\n{LOOP_MARK}"
    )
    assert notes == ["script: the model repeated itself inside line 2; cut there"]
    # Python is the repair's; a rule of "=" is no loop.
    assert out["example"]["code"] == python
    rule = {"script": {"intro": "", "path": "", "code": f"# {'=' * 60}\necho ok"}, "example": {}}
    assert cut_line_loops(section, rule)[1] == []
    # A loop that is the block's first line of code leaves nothing that stands for it.
    alone = {"script": {"intro": "", "path": "", "code": f"#!/bin/bash\n# Install\n{looped}"}}
    out, notes = cut_line_loops(section, alone)
    assert out["script"]["code"] == ""
    assert out["script"]["dropped"].startswith("The model's bash for Script repeated one line")
    assert notes == ["script: its first line of code repeated itself; left out"]


def test_a_cell_the_model_ended_open_far_from_its_bound_is_trimmed_to_whole_words() -> None:
    """The Spec recording of 2026-12-03: cells a few characters short of their bound."""
    from agent.core.templates import get_template

    section = get_template("spec").section("error_handling")
    rows = [
        {
            "code": "OperationalError",
            "meaning": "PostgreSQL or Redis connection failed during a",
            "user_action": "Retry the request after Redis is back up. If",
        },
        {"code": "RedisError", "meaning": "Redis is down.", "user_action": "Retry later"},
    ]
    content = {"strategy": "Fail fast.", "error_codes": rows, "logging": ["Format: JSON."]}
    cuts = find_unfinished(section, content)
    assert [c.path for c in cuts] == [
        ("error_codes", 0, "meaning"),
        ("error_codes", 0, "user_action"),
    ]
    trimmed, notes = apply_trims(content, cuts)
    assert trimmed["error_codes"][0]["meaning"] == "PostgreSQL or Redis connection failed"
    assert trimmed["error_codes"][0]["user_action"] == "Retry the request after Redis is back up."
    assert trimmed["error_codes"][1] == rows[1]  # a phrase with no full stop is whole
    assert len(notes) == 2


def test_a_tree_comment_the_model_ended_on_a_joining_word_loses_it() -> None:
    from agent.core.templates import get_template

    section = get_template("tid").section("code_structure")
    content = {
        "directory_structure": [
            {"path": "relay/retry.py", "holds": "backoff between attempts, with"},
            {"path": "relay/api/events.py", "holds": "routes for publishing events"},
        ],
        "key_class_definitions": {"intro": "", "path": "", "code": GOOD_CODE},
    }
    [cut] = find_unfinished(section, content)
    assert cut.path == ("directory_structure", 0, "holds")
    trimmed, _ = apply_trims(content, [cut])
    assert trimmed["directory_structure"][0]["holds"] == "backoff between attempts"


def test_a_paragraph_ending_on_a_reference_is_whole() -> None:
    from agent.core.templates import get_template

    section = get_template("spec").section("architecture")
    content = {
        "pattern": "See ADR-001",
        "component_diagram": {"components": [], "edges": []},
        "responsibilities": [],
    }
    assert find_unfinished(section, content) == []
    content["pattern"] = "A pipeline, which fits the TDD's stages in ADR"
    assert [c.path for c in find_unfinished(section, content)] == [("pattern",)]


def test_comments_that_say_something_stay_when_the_call_gives_no_code_either() -> None:
    # A list of settings as comments is an answer of a kind; `# purpose` is not.
    settings = "# HF_TOKEN: the Hugging Face access token\n# WS_PORT: the WebSocket port\n"
    provider = FakeProvider([reply("Fine.", code=settings), json.dumps({"code": "# none\n"})])
    result = draft(provider)
    assert [r.prompt_id for r in provider.requests[1:]] == ["write_code"]
    assert result.content["example"]["code"] == settings
    assert not result.content["example"].get("dropped")
    assert any("kept as written" in n for n in result.notes)


@pytest.mark.parametrize("length", [200, 199])  # 479 of 480 on Qwen: counted apart
def test_python_its_bound_stopped_on_a_name_loses_that_line_without_a_call(length: int) -> None:
    lines = "class Endpoint:\n    url: str = ''\n    burst: int = 20\n"
    stopped = lines + "    is_act" + "x" * (length - len(lines) - len("    is_act"))
    assert len(stopped) == length and code_error("python", stopped) is None  # a name parses
    provider = FakeProvider([reply("Fine.", code=stopped)])
    result = draft(provider)
    assert len(provider.requests) == 1
    assert result.content["example"]["code"] == lines.rstrip("\n")
    assert any(n.startswith("example.code: cut off at its limit of 200") for n in result.notes)


def test_python_that_ended_itself_short_of_its_bound_keeps_its_last_line() -> None:
    code = "class Endpoint:\n    url: str = ''\n    is_active: bool = True"
    provider = FakeProvider([reply("Fine.", code=code)])
    assert draft(provider).content["example"]["code"] == code


def test_an_intro_that_trails_off_after_a_sentence_keeps_the_sentence() -> None:
    # anthropic-tid, 2026-12-03: far from its bound, ending on a closed code span.
    intro = "Build the service with its settings first. Then, you can call the `enq`"
    lead_in = "It does two things. The stages are:"
    for text, kept in ((intro, "Build the service with its settings first."), (lead_in, lead_in)):
        content = json.loads(reply("Fine."))
        content["example"]["intro"] = text
        provider = FakeProvider([json.dumps(content)])
        assert draft(provider).content["example"]["intro"] == kept
        assert len(provider.requests) == 1


def test_items_each_stopped_at_its_bound_and_going_on_in_the_next_are_joined() -> None:
    # Qwen2.5-Coder-1.5B, the TID recording of 2026-12-03: Development Approach
    # as one text in four items, each stopped at its bound, the next going on
    # ("… to ensure it can be", "used correctly. …"). Items are bounded at 60.
    first = "The worker claims a delivery. It signs its payload so it can"
    assert len(first) == 60  # stopped at the bound on a whole word, no space after
    second = "be checked by the receiver. Then it posts."
    provider = FakeProvider([reply("Short and whole.", steps=[first, second, "Record it."])])
    result = draft(provider)
    assert len(provider.requests) == 1
    assert result.content["steps"] == [f"{first} {second}", "Record it."]
    assert any(
        "steps item 2: the end of the item before it; joined to it" in n for n in result.notes
    )


def test_a_lower_case_item_after_a_whole_or_short_item_is_not_joined() -> None:
    steps = ["Queue the event.", "redis holds it until a worker takes it.", "Record it"]
    provider = FakeProvider([reply("Short and whole.", steps=steps)])
    result = draft(provider)
    assert result.content["steps"][:2] == steps[:2]
