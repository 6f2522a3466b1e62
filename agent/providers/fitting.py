"""Fitting a reply's JSON Schema to a token limit, for models that fill every bound.

A grammar (or a json-schema response format) built from a fitted schema lets
the model close its JSON before max_tokens; the drafting prompt, the cut check
and the repair call read their numbers from the same fitted schema.

Pure schema arithmetic: imports nothing of tidsmith and no SDK.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

# No fitted string bound goes below this (or below the original, if smaller),
# so names, cells and labels keep theirs and their lists lose items instead.
# Measured on Qwen2.5-Coder-1.5B: cells and names fitted to 8 characters, then
# to 24, were cut off and left out (diagram responsibilities, step lists).
STRING_FLOOR = 40


def _scaled(max_length: int, ratio: float, floor: int = 0) -> int:
    """A string bound scaled by `ratio`, never below the floors (nor above itself)."""
    if ratio >= 1.0:
        return max_length
    return max(floor, min(max_length, STRING_FLOOR), int(max_length * ratio))


def resolve_ref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The schema node a `$ref` into `$defs` points at (the node itself when it is none)."""
    while "$ref" in node:
        node = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
    return node


def worst_case_chars(schema: dict[str, Any], *, strings: bool = True) -> int:
    """The most characters a reply valid for the schema can hold.

    Counts keys, quotes and punctuation too (a table's keys repeat on every
    row); with `strings=False`, only that structure, as if every string were
    empty.
    """
    defs = schema.get("$defs", {})

    def walk(node: dict[str, Any], depth: int = 0) -> int:
        if depth > 20:
            return 0
        if "$ref" in node:
            return walk(defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {}), depth + 1)
        kind = node.get("type")
        if kind == "object":
            props = node.get("properties", {})
            return 2 + sum(len(k) + 4 + walk(v, depth + 1) for k, v in props.items())
        if kind == "array":
            return 2 + int(node.get("maxItems", 1)) * (1 + walk(node.get("items", {}), depth + 1))
        if kind == "string":
            return 2 + (int(node.get("maxLength", 0)) if strings else 0)
        return 8

    return walk(schema)


def fit_schema(schema: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """A copy whose bounds shrink so the worst case holds at most `max_chars`.

    A grammar built from it always lets the model close the JSON before its
    token limit: small models fill every bound they are given, and a reply cut
    off at max_tokens is unusable. Lists and strings share the cut: at a
    factor f, a list keeps sqrt(f) of its items (never fewer than its
    `minItems`) and each string sqrt(f) of its bound, so a table loses rows
    before its cells become unreadable; the largest f that fits wins. Scaling
    strings alone gave names and table cells 8 characters. Replies valid for
    the copy stay valid for the original, whose bounds only ever go down.
    """
    if worst_case_chars(schema) <= max_chars:
        return schema
    return json.loads(_fitted(json.dumps(schema), max_chars))


@functools.lru_cache(maxsize=256)
def _fitted(schema_json: str, max_chars: int) -> str:
    """`fit_schema` on a schema's JSON; cached, as every call of a run fits the same few."""
    low, high = 0.0, 1.0
    for _ in range(16):
        mid = (low + high) / 2
        fits = worst_case_chars(_shrunk(json.loads(schema_json), mid)) <= max_chars
        low, high = (mid, high) if fits else (low, mid)
    return json.dumps(_shrunk(json.loads(schema_json), low))


def _shrunk(node: Any, factor: float) -> Any:
    """`node` (modified in place) with every list and string bound scaled by sqrt(factor)."""
    share = math.sqrt(factor)
    if isinstance(node, dict):
        for value in node.values():
            _shrunk(value, factor)
        if node.get("type") == "array" and "maxItems" in node:
            least = max(1, int(node.get("minItems", 0)))
            most = int(node["maxItems"])
            node["maxItems"] = max(min(least, most), math.ceil(most * share))
        if node.get("type") == "string" and "maxLength" in node:
            floor = int(node.get("minLength", 0))
            node["maxLength"] = _scaled(int(node["maxLength"]), share, floor)
    elif isinstance(node, list):
        for value in node:
            _shrunk(value, factor)
    return node


# Characters per output token a model is budgeted at when nothing better is
# known. Measured on SmolLM2 through llama-server: at 2 some sections still ran
# out (whitespace between tokens, `\uXXXX` escapes that count as one character).
CHARS_PER_TOKEN = 1.5


def char_budget(max_tokens: int, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """Characters a reply can hold and still close within `max_tokens`.

    `chars_per_token` is the model's rate, low end: a budget too high gets
    replies cut at max_tokens, one too low gets every string shortened.
    """
    return max(200, int(max_tokens * chars_per_token) - 150)
