"""A provider for tests and dry runs: replies come from a queue or a schema.

No network, no SDK. Every request is kept in `requests` so tests can check
what the pipeline sent (the shared prefix, the retry message, call counts).
Imports agent.core and agent.providers.base only.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from agent.core.models import run_defaults
from agent.core.records import Usage
from agent.providers.base import Reply, Request

Responder = Callable[[Request], "str | Reply"]


# Where a schema for Anthropic's structured outputs keeps a minItems above 1: the
# SDK's transform moves it into the description, which the model reads.
_MOVED_MIN_ITEMS = re.compile(r"\bminItems: (\d+)")


def _described_min_items(node: dict[str, Any]) -> int:
    found = _MOVED_MIN_ITEMS.search(str(node.get("description", "")))
    return int(found.group(1)) if found else 0


def sample_instance(schema: dict[str, Any], label: str = "x") -> Any:
    """A small value valid for a pydantic JSON schema (deterministic)."""
    defs = schema.get("$defs", {})

    def build(node: dict[str, Any], name: str) -> Any:
        if "$ref" in node:
            return build(defs[node["$ref"].split("/")[-1]], name)
        if "anyOf" in node:
            return build(node["anyOf"][0], name)
        kind = node.get("type")
        if kind == "object":
            return {k: build(v, k) for k, v in node.get("properties", {}).items()}
        if kind == "array":
            count = max(1, node.get("minItems", 1), _described_min_items(node))
            return [build(node.get("items", {}), f"{name} {i + 1}") for i in range(count)]
        if kind == "integer":
            return 1
        if kind == "number":
            return 1.0
        if kind == "boolean":
            return True
        if "enum" in node:
            return node["enum"][0]
        text = f"{label} {name}".replace("_", " ")
        if name == "code":
            # Parses as python, yaml, toml and bash alike; code that is only a
            # comment would be left out as no code (agent.document.mend).
            text = f"x = 1  # {text}"
        elif "pattern" not in node:
            # Ends as a sentence: prose ending on a letter reads as stopped mid-word.
            text += "."
        if "pattern" in node:
            # Ids such as research note refs (R1): the first simple value that fits.
            for candidate in (text, "R1", "1", "x", "a1"):
                if re.search(node["pattern"], candidate):
                    return candidate
        # Below the bound: a string that reaches it reads as cut off (agent.document.intact).
        bound = node.get("maxLength", len(text) + 1)
        return text if len(text) < bound else text[: max(0, bound - 1)]

    return build(schema, label)


class FakeProvider:
    """Replies from a queue of texts/Replies, a callable, or schema samples."""

    name = "fake"

    def __init__(
        self,
        replies: list[str | Reply] | None = None,
        *,
        responder: Responder | None = None,
        model: str = "fake",
        context_window: int | None = None,
        max_concurrency: int | None = None,
        delay: float = 0.0,
        schema_in_text: bool = False,
    ) -> None:
        self.model = model
        self.schema_in_text = schema_in_text
        defaults = run_defaults(self.name)
        self.default_max_tokens = defaults.max_tokens
        self.context_window = context_window or defaults.window
        self.max_concurrency = max_concurrency or defaults.max_concurrency
        self.requests: list[Request] = []
        self._queue: deque[str | Reply] = deque(replies or [])
        self._responder = responder
        self._delay = delay
        self.in_flight = 0
        self.max_in_flight = 0

    async def complete(self, request: Request) -> Reply:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._delay:
                await asyncio.sleep(self._delay)
            if self._queue:
                answer: str | Reply = self._queue.popleft()
            elif self._responder is not None:
                answer = self._responder(request)
            else:
                answer = json.dumps(sample_instance(request.json_schema, request.label))
        finally:
            self.in_flight -= 1
        if isinstance(answer, Reply):
            return answer
        words = sum(len(m.content.split()) for m in request.messages)
        return Reply(
            text=answer,
            usage=Usage(input_tokens=words, output_tokens=len(answer.split())),
            model=self.model,
        )

    async def aclose(self) -> None:
        pass
