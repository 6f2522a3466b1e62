"""An OpenAI-protocol chat completion's JSON, live or from a batch output file, as our Reply.

Validates the envelope a server answered, so a malformed one is one line, not a
KeyError. Imports agent.core and agent.providers.base/failures only, no SDK.
"""

from __future__ import annotations

from typing import Any

from agent.core.records import Usage
from agent.providers.base import Reply
from agent.providers.failures import malformed_reply, usage_count


def usage_of(stats: Any, where: str) -> Usage | None:
    """A chat completion's `usage`, validated; None when the server did not report it."""
    if stats is None:
        return None
    if not isinstance(stats, dict):
        raise malformed_reply(where, f"usage is {type(stats).__name__}, not an object")
    details = stats.get("prompt_tokens_details") or {}
    if not isinstance(details, dict):
        raise malformed_reply(where, "usage.prompt_tokens_details is not an object")
    try:
        return Usage(
            input_tokens=usage_count(stats.get("prompt_tokens"), "prompt_tokens"),
            output_tokens=usage_count(stats.get("completion_tokens"), "completion_tokens"),
            cached_tokens=usage_count(details.get("cached_tokens"), "cached_tokens"),
        )
    except ValueError as e:
        raise malformed_reply(where, str(e)) from None


def reply_of(completion: Any, model: str, where: str) -> Reply:
    """A chat completion's JSON, live or from a batch output file, as our Reply."""
    if not isinstance(completion, dict):
        raise malformed_reply(
            where, f"the body is a JSON {type(completion).__name__}, not an object"
        )
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise malformed_reply(where, "it holds no choices")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise malformed_reply(where, "choices[0] is not an object")
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise malformed_reply(where, "choices[0].message is not an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise malformed_reply(where, "choices[0].message.content is not a string")
    refusal = message.get("refusal")
    finish = choice.get("finish_reason")
    return Reply(
        text=content or "",
        usage=usage_of(completion.get("usage"), where),
        finish_reason=finish if isinstance(finish, str) and finish else "stop",
        refusal=refusal if isinstance(refusal, str) and refusal else None,
        model=str(completion.get("model") or model),
    )
