"""JSON Schema → GBNF, the grammar format llama.cpp constrains sampling with.

Why not llama-cpp-python's own converter: it writes `maxLength: N` as N nested
optional groups, which llama.cpp refuses from ~2000 characters (and the
binding then segfaults on the missing sampler), and its string rule lets raw
newlines through. Here every bound is a counted repetition `x{m,n}`, a string
holds only printable characters and JSON escapes, and whitespace between
tokens is capped so a small model cannot loop on it.

Facts about llama.cpp's grammar parser (`src/llama-grammar.cpp`) this relies on:

- `x{m,n}` with n above 2000 silently becomes `x{m,}` (unbounded) and m above
  2000 is an error, so longer bounds are built from chunks of 2000.
- Repeating a group costs (rules made inside the group) times count against the
  same 2000 limit (`(x{0,100}){0,30}` fails), so a repeated group here never
  holds a repetition itself, and every counted repetition is a rule of its own.
- Ambiguous grammars multiply the parser's stacks per character, so each rule
  here has at most one way to match a given text.

Pure text generation: imports nothing of tidsmith and no SDK.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from agent.providers.fitting import fit_schema

# Keywords that only describe a value and never constrain it.
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly"}
    | {"writeOnly", "$schema", "$id"}
)
_ALLOWED = {
    "object": frozenset({"type", "properties", "required", "additionalProperties"}),
    "array": frozenset({"type", "items", "minItems", "maxItems"}),
    "string": frozenset({"type", "minLength", "maxLength", "pattern"}),
    "integer": frozenset({"type"}),
    "number": frozenset({"type"}),
    "boolean": frozenset({"type"}),
    "null": frozenset({"type"}),
}
# llama.cpp's MAX_REPETITION_THRESHOLD.
MAX_REPEAT = 2000
# Whitespace allowed between two tokens: enough for pretty-printed JSON a few
# levels deep, too little to loop on.
_MAX_WS = 20
_HEX = "[0-9a-fA-F]"

_FIXED_RULES = {
    "ws": f"[ \\t\\n]{{0,{_MAX_WS}}}",
    # A printable character or a JSON escape. A surrogate pair is one escape
    # here, as it is one character to Python (maxLength counts those), and a
    # lone surrogate, which cannot be written out as UTF-8, is no escape at all.
    "char": (
        '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" ('
        f"[0-9a-cA-CefEF] {_HEX}{{3}} | [dD] [0-7] {_HEX}{{2}} | "
        f'[dD] [89abAB] {_HEX}{{2}} "\\\\u" [dD] [c-fC-F] {_HEX}{{2}}))'
    ),
    "integer": '"-"? ("0" | [1-9] [0-9]{0,15})',
    "number": '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?',
    "boolean": '"true" | "false"',
    "null": '"null"',
}


def json_schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A GBNF grammar whose root matches JSON documents valid for `schema`.

    Supports what pydantic emits for bounded models: objects (properties in
    schema order, optional ones omittable, extra keys never generated), `$ref`
    into `$defs`, strings with `minLength`/`maxLength`, arrays with
    `items`/`minItems`/`maxItems`, `enum`/`const`, integer, number, boolean,
    null, `anyOf` and a one-element `allOf`.

    Raises:
        ValueError: the schema uses a keyword this converter does not
            support; the message names it and where it is.
    """
    return _Builder(schema).grammar()


def schema_fingerprint(schema: dict[str, Any]) -> str:
    """A short, stable hash of the schema's canonical JSON, to cache grammars by."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _json_literal(value: Any, where: str) -> str:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError(f"enum/const values must be scalars, got {value!r} at {where}")
    return gbnf_literal(json.dumps(value, ensure_ascii=False))


# The regex subset ids need (`^R[0-9]{1,2}$`): literals, [classes], quantifiers.
_PATTERN_TOKEN = re.compile(r"(\[[^\]\\]+\]|\\.|[^\\\[\](){}?*+|.^$])(\{\d+(?:,\d+)?\}|[?*+])?")


def _pattern(pattern: Any, where: str) -> str:
    """A GBNF sequence for an anchored pattern of literals and character classes."""
    if not isinstance(pattern, str) or not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(
            f"unsupported JSON Schema keyword 'pattern' at {where} ({pattern!r}: only "
            "anchored literals and [classes] with quantifiers)"
        )
    body, parts, pos = pattern[1:-1], [], 0
    while pos < len(body):
        match = _PATTERN_TOKEN.match(body, pos)
        if match is None:
            raise ValueError(
                f"unsupported JSON Schema keyword 'pattern' at {where} ({pattern!r}: only "
                "anchored literals and [classes] with quantifiers)"
            )
        atom, quantifier = match.group(1), match.group(2) or ""
        if atom.startswith("["):
            if '"' in atom or "\\" in atom:
                raise ValueError(f"unsupported 'pattern' class {atom!r} at {where}")
            rule = atom
        else:
            rule = json.dumps(atom[-1])
        parts.append(rule + quantifier)
        pos = match.end()
    return " ".join(parts) or '""'


def _seq(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _count(schema: dict[str, Any], key: str, where: str) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key!r} must be a non-negative integer at {where}")
    return value


def repeat_rule(
    item: str, lo: int, hi: int | None, hint: str, rule: Callable[[str, str], str]
) -> str:
    """An expression for `item{lo,hi}` (hi None: unbounded) that llama.cpp keeps.

    `item` must be one symbol: a rule name, a character class or a
    parenthesised group; `rule(hint, body)` names a rule for `body`.
    """
    if hi is not None and hi < lo:
        raise ValueError(f"a maximum below the minimum ({hi} < {lo}) in {hint}")
    if hi == 0:
        return ""
    if lo <= MAX_REPEAT and (hi is None or hi <= MAX_REPEAT):
        if hi is None:
            count = "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
        elif lo == hi:
            count = f"{{{lo}}}"
        else:
            count = f"{{{lo},{hi}}}"
        return rule(f"{hint}-{lo}-{'n' if hi is None else hi}", f"{item}{count}")
    # Longer runs: a full chunk then the rest, or (only if `lo` allows it)
    # a short run. The two alternatives never match the same text.
    rest = repeat_rule(
        item, max(lo - MAX_REPEAT, 0), None if hi is None else hi - MAX_REPEAT, hint, rule
    )
    body = _seq(f"{item}{{{MAX_REPEAT}}}", rest)
    if lo < MAX_REPEAT:
        body += f" | {item}{{{lo},{MAX_REPEAT - 1}}}"
    return rule(f"{hint}-{lo}-{'n' if hi is None else hi}", body)


class _Builder:
    def __init__(self, schema: dict[str, Any]) -> None:
        if not isinstance(schema, dict):
            raise ValueError("the schema must be a JSON object")
        self._root = {k: v for k, v in schema.items() if k != "$defs"}
        self._defs: dict[str, Any] = schema.get("$defs", {})
        self._rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self._refs: dict[str, str] = {}
        self._used: set[str] = set()

    def grammar(self) -> str:
        # Nothing after the document: the model's next token must end the reply.
        lines = [f"root ::= {self._value(self._root, 'doc', '#')}"]
        lines += [f"{name} ::= {body}" for name, body in self._rules.items()]
        lines += [f"{name} ::= {body}" for name, body in _FIXED_RULES.items() if name in self._used]
        return "\n".join(lines) + "\n"

    # --- rules -----------------------------------------------------------------

    def _use(self, fixed: str) -> str:
        self._used.add(fixed)
        return fixed

    def _fresh(self, hint: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-") or "r"
        name, n = base, 1
        while name in self._rules or name in _FIXED_RULES or name == "root":
            n += 1
            name = f"{base}-{n}"
        return name

    def _rule(self, hint: str, body: str, name: str | None = None) -> str:
        """A rule for `body`, shared with any rule that has the same body.

        `name`: a rule already reserved for this value (a `$ref` target).
        """
        if name is not None:
            self._rules[name] = body
            self._by_body.setdefault(body, name)
            return name
        if body in self._by_body:
            return self._by_body[body]
        name = self._fresh(hint)
        self._rules[name] = body
        self._by_body[body] = name
        return name

    def _repeat(self, item: str, lo: int, hi: int | None, hint: str) -> str:
        return repeat_rule(item, lo, hi, hint, self._rule)

    # --- values ----------------------------------------------------------------

    def _check(self, schema: dict[str, Any], allowed: frozenset[str], where: str) -> None:
        for key in schema:
            if key not in allowed and key not in _ANNOTATIONS:
                raise ValueError(f"unsupported JSON Schema keyword {key!r} at {where}")

    def _value(self, schema: Any, hint: str, where: str, name: str | None = None) -> str:
        """A rule (no trailing whitespace) matching one value of `schema`.

        `name`: the rule to define, when it is reserved already.
        """
        if not isinstance(schema, dict):
            raise ValueError(f"a schema must be a JSON object at {where}, got {schema!r}")
        if "$ref" in schema:
            self._check(schema, frozenset({"$ref"}), where)
            target = self._ref(schema["$ref"], where)
            return target if name is None else self._rule(hint, target, name)
        if "anyOf" in schema or "allOf" in schema:
            key = "anyOf" if "anyOf" in schema else "allOf"
            self._check(schema, frozenset({key}), where)
            subs = schema[key]
            if not isinstance(subs, list) or not subs:
                raise ValueError(f"{key!r} must be a non-empty list at {where}")
            if key == "allOf" and len(subs) > 1:
                raise ValueError(
                    f"unsupported JSON Schema keyword 'allOf' (more than one) at {where}"
                )
            alts = [self._value(s, hint, f"{where}/{key}/{i}") for i, s in enumerate(subs)]
            return self._rule(hint, " | ".join(dict.fromkeys(alts)), name)
        if "const" in schema or "enum" in schema:
            self._check(schema, frozenset({"const", "enum", "type"}), where)
            values = [schema["const"]] if "const" in schema else schema["enum"]
            if not isinstance(values, list) or not values:
                raise ValueError(f"'enum' must be a non-empty list at {where}")
            literals = dict.fromkeys(_json_literal(v, where) for v in values)
            return self._rule(hint, " | ".join(literals), name)
        kind = schema.get("type")
        if kind is None:
            self._check(schema, frozenset(), where)
            raise ValueError(f"a schema without 'type' (any value) is unsupported at {where}")
        if not isinstance(kind, str) or kind not in _ALLOWED:
            raise ValueError(f"unsupported JSON Schema keyword 'type': {kind!r} at {where}")
        self._check(schema, _ALLOWED[kind], where)
        if kind == "object":
            body = self._object(schema, hint, where)
        elif kind == "array":
            body = self._array(schema, hint, where)
        elif kind == "string":
            body = self._string(schema, where)
            hint = (
                "pattern"
                if "pattern" in schema
                else f"string-{schema.get('minLength', 0)}-{schema.get('maxLength', 'n')}"
            )
        else:
            body = self._use(kind)
            if name is None:
                return body
        return self._rule(hint, body, name)

    def _ref(self, ref: Any, where: str) -> str:
        if ref in self._refs:
            return self._refs[ref]
        prefix = "#/$defs/"
        if not isinstance(ref, str) or not ref.startswith(prefix):
            raise ValueError(f"unsupported JSON Schema keyword '$ref': {ref!r} at {where}")
        name = ref.removeprefix(prefix)
        if name not in self._defs:
            raise ValueError(f"'$ref' to a missing definition {ref!r} at {where}")
        # Name the rule before building it, so a recursive model can refer to itself.
        rule = self._fresh(name)
        self._refs[ref] = rule
        self._rules[rule] = ""
        return self._value(self._defs[name], name, ref, rule)

    def _string(self, schema: dict[str, Any], where: str) -> str:
        if "pattern" in schema:
            return _seq('"\\""', _pattern(schema["pattern"], where), '"\\""')
        lo = _count(schema, "minLength", where) or 0
        hi = _count(schema, "maxLength", where)
        chars = self._repeat(self._use("char"), lo, hi, "chars")
        return _seq('"\\""', chars, '"\\""')

    def _array(self, schema: dict[str, Any], hint: str, where: str) -> str:
        if "items" not in schema:
            raise ValueError(f"an array without 'items' is unsupported at {where}")
        lo = _count(schema, "minItems", where) or 0
        hi = _count(schema, "maxItems", where)
        ws = self._use("ws")
        if hi == 0:
            return '"[" ws "]"'
        item = self._value(schema["items"], f"{hint}-item", f"{where}/items")
        more = self._repeat(
            f'("," {ws} {item} {ws})',
            max(lo - 1, 0),
            None if hi is None else hi - 1,
            f"{hint}-more",
        )
        items = _seq(item, ws, more)
        if lo == 0:
            items = f"({items})?"
        return _seq('"["', ws, items, '"]"')

    def _object(self, schema: dict[str, Any], hint: str, where: str) -> str:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", False)
        if not isinstance(props, dict) or not isinstance(required, list):
            raise ValueError(f"'properties' must be an object and 'required' a list at {where}")
        if not isinstance(extra, bool):
            # A schema for extra values (a dict[str, X]) has no fixed keys to emit.
            raise ValueError(f"unsupported JSON Schema keyword 'additionalProperties' at {where}")
        missing = [k for k in required if k not in props]
        if missing:
            raise ValueError(f"'required' names unknown properties {missing} at {where}")
        ws = self._use("ws")
        # Extra keys (additionalProperties true) are valid but never generated.
        pairs = [
            (
                _seq(
                    gbnf_literal(json.dumps(key, ensure_ascii=False)),
                    ws,
                    '":"',
                    ws,
                    self._value(sub, f"{hint}-{key}", f"{where}/properties/{key}"),
                    ws,
                ),
                key in required,
            )
            for key, sub in props.items()
        ]
        if all(req for _, req in pairs):
            body = f' "," {ws} '.join(p for p, _ in pairs)
        else:
            body = self._optional_pairs(pairs, hint)
        return _seq('"{"', ws, body, '"}"')

    def _optional_pairs(self, pairs: list[tuple[str, bool]], hint: str) -> str:
        """Key-value pairs in order, commas between, optional ones omittable.

        `rest[i]`: pairs i.. after something was written (each with its comma);
        `first[i]`: pairs i.. when nothing was written yet. Keys differ, so
        every object has one parse.
        """
        ws = self._use("ws")
        n = len(pairs)
        rest = [""] * (n + 1)
        for i in range(n - 1, 0, -1):
            pair, req = pairs[i]
            comma = _seq('","', ws, pair)
            body = _seq(comma if req else f"({comma})?", rest[i + 1])
            rest[i] = self._rule(f"{hint}-after-{i}", body)
        # `first` is needed only up to the first required pair.
        last = next((i for i, (_, req) in enumerate(pairs) if req), n - 1)
        first = ""
        for i in range(last, -1, -1):
            pair, req = pairs[i]
            body = _seq(pair, rest[i + 1])
            if not req:
                body = f"{body} | {first}" if first else f"({body})?"
            first = self._rule(f"{hint}-from-{i}", body)
        return first


def union_gbnf(schemas: list[dict[str, Any]], max_chars: int) -> str:
    """One grammar accepting a reply valid for any of the schemas, each fitted to `max_chars`.

    For servers that take a grammar only for the whole process (llama-server's
    `--grammar-file`), where each request cannot bring its own: the prompt
    says which object to write, the grammar keeps the reply well-formed.
    """
    defs: dict[str, Any] = {}
    branches: list[dict[str, Any]] = []
    for schema in schemas:
        fitted = fit_schema(schema, max_chars)
        for name, node in fitted.get("$defs", {}).items():
            if name in defs and defs[name] != node:
                raise ValueError(f"schemas define {name!r} differently; cannot join them")
            defs[name] = node
        branches.append({k: v for k, v in fitted.items() if k != "$defs"})
    return json_schema_to_gbnf({"anyOf": branches, "$defs": defs})


class GrammarRules:
    """Named GBNF rules built by hand (markdown replies): every counted repetition a
    rule of its own, rules with the same body shared (llama.cpp's limits, above)."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}

    def rule(self, name: str, body: str) -> str:
        for existing, text in self.rules.items():
            if text == body:
                return existing
        unique, n = name, 1
        while unique in self.rules:
            n += 1
            unique = f"{name}-{n}"
        self.rules[unique] = body
        return unique

    def seq(self, *parts: str) -> str:
        return " ".join(p for p in parts if p)

    def optional(self, body: str) -> str:
        return f"({body})?"

    def chars(self, least: int, most: int, cls: str) -> str:
        most = max(least, most)
        if most > MAX_REPEAT:  # llama.cpp would drop the bound: chunks, as JSON grammars get
            return repeat_rule(cls, least, most, "chars", self.rule)
        return self.rule(f"chars-{least}-{most}", f"{cls}{{{least},{most}}}")

    def repeat(self, item: str, least: int, most: int) -> str:
        if most <= 0:
            return ""
        if most > MAX_REPEAT:
            return repeat_rule(item, least, most, f"{item}-x", self.rule)
        return self.rule(f"{item}-x", f"{item}{{{least},{most}}}")

    def text(self) -> str:
        root = self.rules.pop("root")
        return (
            "\n".join([f"root ::= {root}", *(f"{k} ::= {v}" for k, v in self.rules.items())]) + "\n"
        )
