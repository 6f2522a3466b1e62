"""Code calls of a section drafted as markdown reply with one fenced block, held to
lines by a grammar: nothing in the code is JSON-escaped, so a `"` the model leaves
unescaped no longer ends the code (Qwen2.5-Coder-1.5B, cassettes/openai-tid.yaml
before 2026-12-04: `print(f"` closed the JSON string, 4 of 5 writes did not parse)."""

from __future__ import annotations

from agent.draft.code_reply import (
    CODE_LINE_CHARS,
    code_reply_grammar,
    code_reply_lines,
    read_code_reply,
    rejoined,
)
from agent.draft.markdown_reply import read_markdown
from agent.draft.prompting import load_prompt
from agent.providers.fake import FakeProvider
from tests.test_grammar import Recognizer
from tests.test_markdown_reply import REPLY, SECTION, _schema, draft_markdown

WORKER = '    await ctx["service"].deliver(delivery_id)'
# Code with double quotes in it: the kind a JSON string closed early.
WRITTEN = (
    "async def deliver(ctx: dict, delivery_id: int) -> None:\n"
    '    print(f"posting {delivery_id}")\n'
    '    await ctx["service"].deliver(delivery_id)'
)


def test_the_grammar_holds_one_fenced_block_of_counted_lines() -> None:
    recognizer = Recognizer(code_reply_grammar("python", 3))
    assert recognizer.accepts('```python\nx = "a"\n\ny = 2\n```\n')
    assert not recognizer.accepts("```python\na = 1\nb = 2\nc = 3\nd = 4\n```\n")  # 4 lines
    assert not recognizer.accepts("Here it is:\n```python\nx = 1\n```\n")  # prose first
    assert not recognizer.accepts("```python\n`x`\n```\n")  # a fence inside ends it
    assert not recognizer.accepts('{"code": "x = 1"}')


def test_a_reply_is_read_as_its_first_fenced_block() -> None:
    assert read_code_reply("```python\nx = 1\n```\n") == "x = 1"
    assert (
        read_code_reply("Here:\n\n```python\nx = 1\ny = 2\n```\nThat is all.\n") == "x = 1\ny = 2"
    )
    assert read_code_reply("x = 1\n") == "x = 1"  # no fence: all code
    assert read_code_reply("```bash\necho a\necho b") == "echo a\necho b"  # cut before its end


def test_lines_asked_for_and_held_to_are_fitted_to_the_reply_limit() -> None:
    asked, held = code_reply_lines(1400, None)
    assert (asked, held) == (23, 69)
    asked, held = code_reply_lines(1400, 1000)  # 1,000 characters of room: 24 lines of 41
    assert held == 24 and asked == 23
    assert code_reply_lines(100, None) == (2, 12)


def test_code_written_for_a_markdown_section_comes_back_as_a_fenced_block() -> None:
    comments = REPLY.replace(WORKER, "    # post the delivery")
    comments = comments.replace("async def deliver(ctx: dict, delivery_id: int) -> None:\n", "")
    provider = FakeProvider([comments, f"```python\n{WRITTEN}\n```\n"])
    result = draft_markdown(provider)
    [_, write] = provider.requests
    assert write.prompt_id == "write_code" and write.reply_format == "markdown"
    _, held = code_reply_lines(SECTION.parts[3].max_chars, None)
    assert write.grammar == code_reply_grammar("python", held)
    ask = write.messages[-1].content
    assert "JSON" not in ask and "in one ```python block" in ask
    assert result.content["worker"]["code"] == WRITTEN


def test_code_that_does_not_parse_is_repaired_as_a_fenced_block() -> None:
    broken = REPLY.replace(WORKER, '    print(f"posting {delivery_id}"')
    provider = FakeProvider([broken, f"```python\n{WRITTEN}\n```\n"])
    result = draft_markdown(provider)
    [_, repair] = provider.requests
    assert repair.prompt_id == "repair_code" and repair.reply_format == "markdown"
    assert "JSON" not in repair.messages[-1].content
    assert result.content["worker"]["code"] == WRITTEN
    assert any("repaired" in note for note in result.notes)


def test_a_fenced_reply_that_reached_its_lines_loses_the_last_one() -> None:
    # The grammar ended the block at its bound: its last line may be a piece of one.
    comments = REPLY.replace(WORKER, "    # post the delivery")
    comments = comments.replace("async def deliver(ctx: dict, delivery_id: int) -> None:\n", "")
    _, held = code_reply_lines(SECTION.parts[3].max_chars, None)
    lines = [f"x{i} = {i}" for i in range(held - 1)] + ["is_act"]
    provider = FakeProvider([comments, "```python\n" + "\n".join(lines) + "\n```\n"])
    result = draft_markdown(provider)
    assert result.content["worker"]["code"] == "\n".join(lines[:-1])


def test_json_code_calls_keep_the_json_ask() -> None:
    for prompt_id in ("write_code", "repair_code"):
        replies = load_prompt(prompt_id).replies
        assert '{"code": "..."}' in replies["json"] and "$limit" in replies["json"]
        assert "JSON" not in replies["markdown"] and "```$language" in replies["markdown"]


def test_a_line_the_grammar_ended_at_its_bound_is_joined_to_the_next() -> None:
    # At 100 characters a line, the recording's settings class broke inside a URL:
    # `...relay@localhost:` / `5432/relay")`, which did not parse, nor did its repair.
    url = '    DATABASE_URL = os.getenv("RELAY_DATABASE_URL", "postgresql+asyncpg://relay:relay@'
    line = url + "h" * (CODE_LINE_CHARS - len(url) - 9) + 'ost:5432/relay")'
    forced = line[:CODE_LINE_CHARS] + "\n" + line[CODE_LINE_CHARS:]
    block = f"```python\nimport os\n\n\nclass Settings:\n{forced}\n    x = 1\n```\n"
    assert rejoined(read_code_reply(block)) == f"import os\n\n\nclass Settings:\n{line}\n    x = 1"
    section = REPLY.replace(WORKER, forced)
    content, _ = read_markdown(SECTION, section, _schema())
    assert line in content["worker"]["code"].split("\n")
    # A line shorter than the bound ends where the model ended it.
    assert rejoined("x = (1,\n     2)") == "x = (1,\n     2)"
    # Written for a code call: joined too, and its lines counted before joining.
    comments = REPLY.replace(WORKER, "    # post the delivery")
    comments = comments.replace("async def deliver(ctx: dict, delivery_id: int) -> None:\n", "")
    written = f"async def deliver(ctx, delivery_id):\n{forced}\n    return DATABASE_URL"
    provider = FakeProvider([comments, f"```python\n{written}\n```\n"])
    assert line in draft_markdown(provider).content["worker"]["code"].split("\n")
