"""parse_reply: the JSON inside a whole-reply fence, or around chat, validated."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agent.draft.calls import parse_reply
from agent.providers.base import Reply


class Answer(BaseModel):
    a: int


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        '```\n{"a": 1}\n```\n',
        '```json\n\n{"a": 1}\n```',
        '~~~json\n{"a": 1}\n~~~',
        # A fence it cannot close (other length, other kind, same line): around chat.
        '````json\n{"a": 1}\n```',
        '```json\n{"a": 1}\n~~~',
        '```json\n{"a": 1}```',
        'Here it is:\n```json\n{"a": 1}\n```',
        '```json\n{"a": 1}\n```\nHope this helps!',
    ],
)
def test_fenced_or_chatty_replies_parse(text: str) -> None:
    assert parse_reply(Answer, Reply(text=text)) == Answer(a=1)


def test_an_unclosed_fence_is_cut_json() -> None:
    with pytest.raises(ValueError, match="no complete JSON object"):
        parse_reply(Answer, Reply(text='```json\n{"a": 1', finish_reason="length"))


def test_json_with_a_fence_inside_a_string_keeps_it() -> None:
    class Code(BaseModel):
        code: str

    text = '```json\n{"code": "```python\nx = 1\n```"}\n```'
    assert parse_reply(Code, Reply(text=text)) == Code(code="```python\nx = 1\n```")
