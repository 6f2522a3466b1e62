"""Checks a JSON schema against the structured-output rules OpenAI and Anthropic publish.

Written from the providers' documents, not from our own transforms, so that a
transform that drifts from the rules (or an SDK update that changes one) is
caught before a request is paid for. Each check names the rule it enforces:

- OpenAI: "Structured model outputs", section "Supported schemas"
  (https://platform.openai.com/docs/guides/structured-outputs#supported-schemas),
  plus what the API answered to requests that broke an unwritten rule (quoted
  beside those checks).
- Anthropic: "Structured outputs", section "JSON Schema limitations"
  (https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs#json-schema-limitations).

A problem is one line: where in the schema (a JSON path) and which rule.
Pure data checks: imports nothing of tidsmith and no SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

OPENAI_RULES = "https://platform.openai.com/docs/guides/structured-outputs#supported-schemas"
ANTHROPIC_RULES = (
    "https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs"
    "#json-schema-limitations"
)

# Keywords that hold sub-schemas, by shape: one schema, a name → schema map, a list of schemas.
_ONE = ("items", "not", "additionalProperties", "if", "then", "else", "contains")
_MAP = ("properties", "$defs", "definitions", "patternProperties")
_LIST = ("anyOf", "allOf", "oneOf", "prefixItems")

# OpenAI, "Supported schemas": the types, the composition keyword (anyOf), references
# ($ref/$defs), and the "Supported properties" per type; "title" and "description" are
# annotations the SDK's own strict schemas carry.
_OPENAI_ALLOWED = frozenset(
    {
        # structure
        "type", "properties", "required", "additionalProperties", "items", "anyOf",
        "enum", "const", "$ref", "$defs", "definitions",
        # annotations
        "title", "description",
        # "Supported properties": string
        "pattern", "format",
        # number
        "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
        # array
        "minItems", "maxItems",
    }
)  # fmt: skip
# "Supported properties" → string formats.
_OPENAI_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
# "Objects have limitations on nesting depth and size".
OPENAI_MAX_PROPERTIES = 5000
OPENAI_MAX_DEPTH = 10
OPENAI_MAX_STRING_CHARS = 120_000
OPENAI_MAX_ENUM_VALUES = 1000
_OPENAI_TYPES = frozenset({"string", "number", "boolean", "integer", "object", "array", "null"})

# Anthropic, "JSON Schema limitations" → "Supported features".
_ANTHROPIC_ALLOWED = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "anyOf", "allOf",
        "enum", "const", "$ref", "$defs", "definitions", "title", "description", "default",
        "format", "pattern", "minItems",
    }
)  # fmt: skip
_ANTHROPIC_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)


def _walk(node: Any, path: str, depth: int) -> Iterator[tuple[dict[str, Any], str, int]]:
    """Every sub-schema with its JSON path and object-nesting depth (the root object is 1)."""
    if not isinstance(node, dict):
        return
    if node.get("type") == "object" or "properties" in node:
        depth += 1
    yield node, path, depth
    for key in _ONE:
        if isinstance(node.get(key), dict):
            yield from _walk(node[key], f"{path}/{key}", depth)
    for key in _MAP:
        children = node.get(key)
        if isinstance(children, dict):
            # $defs are reached through $ref, at the depth of the reference.
            at = 0 if key in ("$defs", "definitions") else depth
            for name, child in children.items():
                yield from _walk(child, f"{path}/{key}/{name}", at)
    for key in _LIST:
        children = node.get(key)
        if isinstance(children, list):
            for i, child in enumerate(children):
                yield from _walk(child, f"{path}/{key}/{i}", depth)


def _ref_depths(schema: dict[str, Any]) -> int:
    """The deepest object nesting, following $refs (a recursive schema counts as too deep)."""
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}

    def depth(node: Any, seen: tuple[str, ...]) -> int:
        if not isinstance(node, dict):
            return 0
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in seen:
                return 10**6
            return depth(defs.get(name), (*seen, name))
        level = 1 if node.get("type") == "object" or "properties" in node else 0
        deepest = 0
        for key in (*_ONE, "properties", "patternProperties", *_LIST):
            child = node.get(key)
            children = (
                list(child.values())
                if isinstance(child, dict) and key in ("properties", "patternProperties")
                else child
                if isinstance(child, list)
                else [child]
            )
            for c in children:
                deepest = max(deepest, depth(c, seen))
        return level + deepest

    return depth(schema, ())


def openai_strict_problems(schema: dict[str, Any]) -> list[str]:
    """Why OpenAI's strict `json_schema` mode would reject `schema` (empty: it conforms)."""
    problems: list[str] = []
    # "Root objects must not be anyOf and must be an object".
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("/: the root must be an object, not anyOf (Supported schemas)")
    properties = 0
    chars = 0
    enum_values = 0
    for node, path, _ in _walk(schema, "", 0):
        problems.extend(_openai_node_problems(node, path or "/"))
        node_properties, node_chars, node_enum_values = _openai_node_sizes(node)
        properties += node_properties
        chars += node_chars
        enum_values += node_enum_values
    # "A schema may have up to 5000 object properties total, with up to 10 levels of nesting".
    if properties > OPENAI_MAX_PROPERTIES:
        problems.append(f"/: {properties} object properties (at most {OPENAI_MAX_PROPERTIES})")
    depth = _ref_depths(schema)
    if depth > OPENAI_MAX_DEPTH:
        problems.append(f"/: {depth} levels of object nesting (at most {OPENAI_MAX_DEPTH})")
    # "the total string length of all property names, definition names, enum values,
    # and const values cannot exceed 120,000 characters".
    if chars > OPENAI_MAX_STRING_CHARS:
        problems.append(f"/: {chars} characters of names and values (at most 120,000)")
    # "A schema may have up to 1000 enum values across all enum properties".
    if enum_values > OPENAI_MAX_ENUM_VALUES:
        problems.append(f"/: {enum_values} enum values (at most {OPENAI_MAX_ENUM_VALUES})")
    return problems


def _openai_node_problems(node: dict[str, Any], where: str) -> list[str]:
    """What strict mode rejects in one sub-schema, its children aside."""
    problems = [
        f"{where}: keyword {key!r} is not supported in strict mode"
        for key in node
        if key not in _OPENAI_ALLOWED
    ]
    ref = node.get("$ref")
    if ref is not None:
        # Recorded: 400 "$ref cannot have keywords {'description'}".
        siblings = sorted(k for k in node if k != "$ref")
        if siblings:
            problems.append(f"{where}: $ref cannot have sibling keywords {siblings}")
        if not (isinstance(ref, str) and ref.startswith("#/")):
            problems.append(f"{where}: $ref must point inside the schema (#/...)")
    types = node.get("type")
    for t in types if isinstance(types, list) else [types] if types else []:
        if t not in _OPENAI_TYPES:
            problems.append(f"{where}: type {t!r} is not supported")
    fmt = node.get("format")
    if fmt is not None and fmt not in _OPENAI_FORMATS:
        problems.append(f"{where}: string format {fmt!r} is not supported")
    props = node.get("properties")
    if node.get("type") == "object" or isinstance(props, dict):
        # "additionalProperties: false must always be set in objects".
        if node.get("additionalProperties") is not False:
            problems.append(f"{where}: objects must set additionalProperties: false")
        # "All fields must be required".
        names = list(props) if isinstance(props, dict) else []
        if sorted(node.get("required") or []) != sorted(names):
            problems.append(f"{where}: every property must be listed in required")
    values = node.get("enum")
    strings = [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
    # "For a single enum property with string values, the total string length
    # of all enum values cannot exceed 15,000 characters when there are more
    # than 250 enum values".
    if len(strings) > 250 and sum(len(v) for v in strings) > 15_000:
        problems.append(f"{where}: a >250-value string enum exceeds 15,000 characters")
    return problems


def _openai_node_sizes(node: dict[str, Any]) -> tuple[int, int, int]:
    """One sub-schema's share of the totals strict mode bounds: (properties, chars, enum values)."""
    properties = 0
    chars = 0
    enum_values = 0
    props = node.get("properties")
    if node.get("type") == "object" or isinstance(props, dict):
        names = list(props) if isinstance(props, dict) else []
        properties += len(names)
        chars += sum(len(n) for n in names)
    for key in ("$defs", "definitions"):
        chars += sum(len(n) for n in node.get(key) or {})
    values = node.get("enum")
    if isinstance(values, list):
        enum_values += len(values)
        chars += sum(len(v) for v in values if isinstance(v, str))
    if isinstance(node.get("const"), str):
        chars += len(node["const"])
    return properties, chars, enum_values


def anthropic_problems(schema: dict[str, Any]) -> list[str]:
    """Why Anthropic's structured outputs would reject `schema` (empty: it conforms)."""
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append("/: the output format's schema must be an object")
    for node, path, _ in _walk(schema, "", 0):
        where = path or "/"
        for key in node:
            # "Not supported: numerical constraints (minimum, maximum, multipleOf),
            # string constraints (minLength, maxLength), array constraints beyond
            # minItems of 0 or 1", and keywords outside "Supported features".
            if key not in _ANTHROPIC_ALLOWED:
                problems.append(f"{where}: keyword {key!r} is not supported")
        min_items = node.get("minItems")
        if min_items is not None and min_items not in (0, 1):
            problems.append(f"{where}: minItems must be 0 or 1, not {min_items}")
        fmt = node.get("format")
        if fmt is not None and fmt not in _ANTHROPIC_FORMATS:
            problems.append(f"{where}: string format {fmt!r} is not supported")
        ref = node.get("$ref")
        if ref is not None and not (isinstance(ref, str) and ref.startswith("#/")):
            # "External $ref is not supported".
            problems.append(f"{where}: $ref must point inside the schema (#/...)")
        props = node.get("properties")
        is_object = node.get("type") == "object" or isinstance(props, dict)
        # "additionalProperties must be set to false" for objects.
        if is_object and node.get("additionalProperties") is not False:
            problems.append(f"{where}: objects must set additionalProperties: false")
        values = node.get("enum")
        if isinstance(values, list) and any(isinstance(v, dict | list) for v in values):
            # "enum (strings, numbers, bools, or nulls only - no complex types)".
            problems.append(f"{where}: enum values must be strings, numbers, booleans or null")
    # "Recursive schemas are not supported".
    if _ref_depths(schema) >= 10**6:
        problems.append("/: recursive schemas are not supported")
    return problems
