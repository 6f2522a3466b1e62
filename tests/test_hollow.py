"""Code parts with no code of their own: imports only, or a repeat of an earlier block.

Comments only is in test_intact.py (the first such rule); these are its two
siblings, each asked for once with `write_code` and left out when the reply
shows no code of its own either.
"""

from __future__ import annotations

import asyncio
import json

from agent.core.templates import Template
from agent.document.assemble import render_section
from agent.document.hollow import hollow_parts, only_imports, repeats
from agent.draft.plan import SectionDraft
from agent.draft.sections import draft_section
from agent.providers.base import Message
from agent.providers.fake import FakeProvider

TEMPLATE = Template.model_validate(
    {
        "name": "pair",
        "version": "1",
        "title": "Pair Document",
        "description": "Two code parts in one section.",
        "doc_title": "{feature} Pair",
        "doc_kind": "PAIR",
        "system": "You write pair documents.",
        "sections": [
            {
                "id": "logic",
                "title": "Logic",
                "guidance": "The logic.",
                "parts": [
                    {
                        "id": "core",
                        "title": "Core Logic",
                        "kind": "code",
                        "language": "python",
                        "guidance": "The delivery function.",
                        "max_chars": 600,
                    },
                    {
                        "id": "pipeline",
                        "title": "Pipeline",
                        "kind": "code",
                        "language": "python",
                        "guidance": "The stages in order, one call each.",
                        "max_chars": 600,
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
CORE = (
    "async def deliver_webhook(ctx, delivery_id):\n"
    "    claim_result = await ctx.db.claim_delivery(delivery_id)\n"
    "    if not claim_result:\n"
    "        return\n"
    "    signature = ctx.signer.sign(claim_result.endpoint, delivery_id)\n"
    "    response = await ctx.client.post(claim_result.endpoint.url, json=delivery_id)\n"
    "    await ctx.db.update_delivery(delivery_id, status='succeeded')\n"
)
# The same function with its last line changed: the Data Processing Pipeline
# Qwen2.5-Coder-1.5B wrote in the README run of 2026-12-03.
CORE_AGAIN = CORE.replace("status='succeeded')", "status='retrying')")
PIPELINE = (
    "async def run_pipeline(delivery_id: str) -> None:\n"
    "    delivery = await claim(delivery_id)\n"
    "    allowed = await rate_limit(delivery.endpoint_id)\n"
    "    signed = sign_payload(delivery, allowed)\n"
    "    await post_and_record(signed)\n"
)
IMPORTS = (
    "from relay.models import Endpoint, Delivery\n"
    "from relay.retry import RetryPolicy\n"
    "# (cut off here: the model repeated itself from this point)\n"
)


def reply(core: str, pipeline: str) -> str:
    return json.dumps(
        {
            "core": {"intro": "Delivering one.", "path": "", "code": core},
            "pipeline": {"intro": "The stages.", "path": "", "code": pipeline},
            "tdd_refs": ["Overview"],
        }
    )


def draft(provider: FakeProvider) -> SectionDraft:
    return asyncio.run(draft_section(provider, TEMPLATE, SECTION, MESSAGES, max_tokens=1000))


def test_only_imports_reads_python_of_import_lines_and_comments_alone() -> None:
    assert only_imports("python", IMPORTS)
    # Cut inside an import's brackets: still only the import.
    assert only_imports("python", "from relay.models import (\n    Endpoint,\n    Deliv")
    assert not only_imports("python", IMPORTS + "policy = RetryPolicy()\n")
    assert not only_imports("python", "# only a comment\n")
    assert not only_imports("bash", "import foo\n")


def test_a_repeat_shares_most_long_lines_not_the_short_ones_every_block_has() -> None:
    assert repeats(CORE_AGAIN, CORE)
    assert not repeats(PIPELINE, CORE)
    # Short lines and imports are in any two blocks of one feature.
    short = "import asyncio\ntry:\n    return None\nexcept Exception:\n    raise\n"
    assert not repeats(short * 2, short)


def test_hollow_parts_names_the_earlier_block_a_part_repeats() -> None:
    content = json.loads(reply(CORE, CORE_AGAIN))
    [found] = hollow_parts(SECTION, content)
    assert (found.part.id, found.found) == ("pipeline", "repeat")
    assert found.earlier is not None and found.earlier.id == "core"
    assert hollow_parts(SECTION, json.loads(reply(CORE, PIPELINE))) == []


def test_a_repeated_block_is_asked_for_once_without_showing_the_repeat() -> None:
    provider = FakeProvider([reply(CORE, CORE_AGAIN), json.dumps({"code": PIPELINE})])
    result = draft(provider)
    assert [r.prompt_id for r in provider.requests[1:]] == ["write_code"]
    ask = " ".join(provider.requests[1].messages[-1].content.split())
    assert 'repeats the code of the block "Core Logic" above it' in ask
    assert "claim_delivery" not in ask  # shown, it would be copied again
    assert "What the block must show: The stages in order, one call each." in ask
    assert provider.requests[1].messages[0] == provider.requests[0].messages[0]
    assert result.content["pipeline"]["code"] == PIPELINE.strip("\n")
    assert "pipeline: the python block repeated an earlier block; written" in result.notes


def test_a_block_repeated_again_is_left_out_with_a_note_naming_the_block() -> None:
    provider = FakeProvider([reply(CORE, CORE_AGAIN), json.dumps({"code": CORE})])
    result = draft(provider)
    assert len(provider.requests) == 2
    assert result.content["pipeline"]["code"] == ""
    assert "pipeline: repeated core; left out, after one call" in result.notes
    markdown = render_section(TEMPLATE, SECTION, result.content)
    assert "repeated the code of Core Logic" in markdown
    assert markdown.count("claim_delivery") == 1


def test_imports_alone_are_asked_for_once_unshown_then_left_out_if_again() -> None:
    provider = FakeProvider([reply(CORE, IMPORTS), json.dumps({"code": IMPORTS})])
    result = draft(provider)
    ask = " ".join(provider.requests[1].messages[-1].content.split())
    assert "holds only import lines, and no code that uses them" in ask
    assert "write only that, with no import line" in ask
    # Shown, they came back alone (4 of 6 calls, Qwen2.5-Coder-1.5B, 2026-12-03).
    assert "from relay.retry import RetryPolicy" not in ask
    assert result.content["pipeline"]["code"] == ""
    assert "held only import lines" in result.content["pipeline"]["dropped"]
    assert "pipeline: the python block held only import lines; left out, after one call" in (
        result.notes
    )


def test_the_code_written_after_imports_alone_goes_under_them() -> None:
    repeated = IMPORTS + "from relay.models import Endpoint, Delivery\nfrom fastapi import\n"
    written = "from relay.retry import RetryPolicy\n" + PIPELINE
    provider = FakeProvider([reply(CORE, repeated), json.dumps({"code": written})])
    result = draft(provider)
    # Each whole import once, the one its bound cut and tidsmith's mark gone,
    # the import the reply wrote again not twice.
    assert result.content["pipeline"]["code"] == (
        "from relay.models import Endpoint, Delivery\n"
        "from relay.retry import RetryPolicy\n\n" + PIPELINE.strip("\n")
    )
    assert "pipeline: the python block held only import lines; written" in result.notes


def test_import_statements_keeps_whole_ones_across_lines() -> None:
    from agent.document.hollow import import_statements

    code = (
        "import os\nfrom relay.models import (\n    Endpoint,\n    Delivery,\n)\n"
        "x = 1\nimport os\nfrom relay.retry import (\n    RetryPol"
    )
    assert import_statements(code) == [
        "import os",
        "from relay.models import (\n    Endpoint,\n    Delivery,\n)",
    ]


def test_the_marks_tidsmith_cut_at_are_not_shown_to_the_model() -> None:
    comments = (
        "# Endpoint model with its URL\n"
        "# (cut off here: the model repeated itself from this point)\n"
    )
    provider = FakeProvider([reply(CORE, comments), json.dumps({"code": PIPELINE})])
    draft(provider)
    ask = provider.requests[1].messages[-1].content
    assert "# Endpoint model with its URL" in ask
    assert "cut off here" not in ask  # copied into the reply, it was (2026-12-03)


def test_a_written_block_its_bound_stopped_loses_the_piece_of_a_line() -> None:
    # The Spec's Core Entities, 2026-12-03: the reply stopped at its bound on
    # "    is_act", which parses as a name.
    fields = "class Endpoint(BaseModel):\n    url: str\n    rate_limit_burst: int\n"
    stopped = (fields + "    is_act" + " " * 600)[:600].rstrip()
    stopped += "x" * (600 - len(stopped))  # at the bound, still one name
    provider = FakeProvider([reply(CORE, IMPORTS), json.dumps({"code": stopped})])
    result = draft(provider)
    kept = "from relay.models import Endpoint, Delivery\nfrom relay.retry import RetryPolicy\n\n"
    assert result.content["pipeline"]["code"] == kept + fields.rstrip("\n")


def test_without_last_line_takes_only_what_a_bound_may_have_cut() -> None:
    from agent.document.blocks import without_last_line

    assert without_last_line("python", "x = 1\ny = 2\nis_act") == "x = 1\ny = 2"
    assert without_last_line("python", "def f(:\n  retu") == "def f(:\n  retu"  # repair's
    assert without_last_line("python", "is_act") == "is_act"
    assert without_last_line("bash", "echo a\nech") == "echo a\nech"
