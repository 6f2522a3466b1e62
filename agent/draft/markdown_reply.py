"""A section reply written as markdown: the grammar holding its shape, and the code
reading it into the section's fields (docs/embedded.md, "Sections as markdown").

One sub-heading per part, and under it the part's kind (prose, list items, a fenced
block after its intro, a pipe table, files, boxes and arrows). Strings longer than
the schema allows end at their last whole sentence inside it, lists at their last
allowed item, each with a note. Imports core, providers and the draft stage's code
replies (`code_reply`)."""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel

from agent.core.markdown import parse
from agent.core.templates import INTRO_CHARS, Part, Section, column_keys, section_model
from agent.draft.code_reply import (
    CODE_LINE_CHARS,
    TYPICAL_LINE,
    code_lines_bound,
    fenced,
    fitted_lines,
    rejoined,
)
from agent.providers.fitting import fit_schema, resolve_ref
from agent.providers.grammar import GrammarRules, gbnf_literal

# A bullet or numbered item at the start of a line (its indentation kept).
_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d{1,2}[.)])\s+(.*)$")
# `path` or path, then what it holds after a dash, colon or in brackets. Not lazy: read
# to the first dash, `frontend/steering-panel.py` was `frontend/steering` (TDD 006).
_FILE = re.compile(
    r"^(?:`(?P<quoted>[^`\n]+)`|(?P<bare>[\w./@-]+))"
    r"\s*(?:\((?P<inner>[^)]*)\)\s*$|[-\u2013\u2014:]?\s*(?P<rest>.*)$)"
)
# A diagram's flow: A -> B: label (or an arrow sign).
_EDGE = re.compile(
    r"^`?(?P<src>[^`>\u2192]+?)`?\s*(?:->|-->|\u2192|=>)\s*`?(?P<dst>[^`:]+?)`?\s*(?::\s*(?P<label>.*))?$"
)
# A first line of code that only names its file: `# relay/delivery/worker.py`.
_PATH_LINE = re.compile(
    r"^\s*(?:#|//|--)\s*(?:file:\s*)?`?([\w.@-]+(?:/[\w.@-]+)+|[\w-]+\.\w{1,5})`?\s*$"
)
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)(?=\s|$)")
_NOTE_ID = re.compile(r"^R\d{1,2}$")
# The last sub-heading: the TDD headings (and research notes) the section drew on.
_REFS = "based_on"


def _key(title: str) -> str:
    """A heading or column as compared: no numbering, marks or case."""
    text = re.sub(r"^\s*(?:\d+(?:\.\d+)*\.?|[A-Z]\.)\s+", "", title)
    return " ".join(re.sub(r"[^\w\s]", " ", text).lower().split())


def read_markdown(
    section: Section, text: str, schema: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The section's fields from a markdown reply, and what was shortened to fit `schema`.

    Raises:
        ValueError: a part's sub-heading is missing; the message names it, for
            the retry (what is missing under a heading, validation reports).
    """
    bodies = _bodies(section, text)
    content: dict[str, Any] = {}
    notes: list[str] = []
    for part in section.parts:
        content[part.id] = _read_part(part, bodies[part.id])
        code = content[part.id].get("code", "") if part.kind == "code" else ""
        if part.kind == "code" and code.count("\n") + 1 >= _code_lines(schema, part):
            # The grammar ended it there: whole lines, but maybe not the whole example.
            notes.append(
                f"{part.id}: the code reached its bound of {_code_lines(schema, part)} lines"
            )
    refs = [r.strip("`*\"' ") for r in _items(bodies.get(_REFS, ""))]
    content["tdd_refs"] = [r for r in refs if r and not _NOTE_ID.match(r)]
    if "note_refs" in schema.get("properties", {}):
        content["note_refs"] = list(dict.fromkeys(r for r in refs if _NOTE_ID.match(r)))
    fitted = _fit(content, schema, schema.get("$defs", {}), "", notes)
    return fitted, notes


def based_on(refs: list[str], headings: dict[str, list[str]], content: str) -> list[str]:
    """The TDD headings a markdown reply drew on, spelled as the TDD spells them.

    Its "Based on" list, read against the TDD's `headings` (each with the names
    it holds): Qwen2.5-Coder-1.5B filled it with "TDD:** The TDD provides the
    necessary information about" and links to the PRD, and `tidsmith update`
    and the coverage lint need real headings. A ref naming a heading is that
    heading; none naming one, the headings two or more of whose names
    `content` uses, most first, up to three.
    """
    keyed = {_key(title): title for title in headings}
    named = [
        title
        for ref in refs
        for key, title in keyed.items()
        if len(key) >= 4 and (key == _key(ref) or f" {key} " in f" {_key(ref)} ")
    ]
    if named:
        return list(dict.fromkeys(named))[:6]
    used = {title: sum(name in content for name in names) for title, names in headings.items()}
    ranked = sorted((t for t, n in used.items() if n >= 2), key=lambda t: -used[t])
    return ranked[:3]


def _bodies(section: Section, text: str) -> dict[str, str]:
    """Each part's text: the lines under its sub-heading, up to the next one read."""
    lines = text.splitlines()
    wanted = {_key(p.title): p.id for p in section.parts} | {"based on": _REFS}
    found: list[tuple[int, str]] = []
    for line, title in _headings(lines):
        part_id = wanted.get(_key(title))
        if part_id is not None and part_id not in {p for _, p in found}:
            found.append((line, part_id))
    found.sort()
    ids = {p for _, p in found}
    only = section.parts[0].id if len(section.parts) == 1 else None
    if only is not None and only not in ids:
        # A section of one part needs no sub-heading: what is before "Based on" is it.
        found.insert(0, (-1, only))
        ids.add(only)
    missing = [p.title for p in section.parts if p.id not in ids]
    if missing:
        names = ", ".join(f'"### {t}"' for t in missing)
        raise ValueError(f"the reply has no sub-heading {names}; write each part under its own")
    bodies: dict[str, str] = {}
    for i, (line, part_id) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(lines)
        bodies[part_id] = "\n".join(lines[line + 1 : end]).strip("\n")
    return bodies


def _headings(lines: list[str]) -> list[tuple[int, str]]:
    """ATX headings and whole-line bold titles outside code, with their line numbers."""
    mask = parse("\n".join(lines) + "\n").code_mask()
    out: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        if i < len(mask) and mask[i]:
            continue
        match = re.match(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", line) or re.match(
            r"^\s*\*\*(.+?)\*\*:?\s*$", line
        )
        if match:
            out.append((i, match.group(1)))
    return out


def _read_part(part: Part, body: str) -> Any:
    if part.kind == "text":
        return body.strip()
    if part.kind == "list":
        return _items(body) or _paragraphs(body)
    if part.kind == "code":
        return _code(part, body)
    if part.kind == "table":
        return _table(part, body)
    if part.kind == "tree":
        return [_file(item) for item in _items(body)]
    return _diagram(body)


def _paragraphs(body: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", body) if p.strip()]


def _items(body: str) -> list[str]:
    """Top-level list items, each with its indented continuation lines joined."""
    items: list[str] = []
    open_item = False
    indent: int | None = None
    for line in body.splitlines():
        match = _ITEM.match(line)
        if match and (indent is None or len(match.group(1)) <= indent):
            indent = len(match.group(1))
            items.append(match.group(2).strip())
            open_item = True
        elif open_item and line.strip() and line[:1] in (" ", "\t"):
            items[-1] += " " + line.strip()
        elif line.strip():
            open_item = False  # a line of its own ("Flows:") ends the item before it
    return [" ".join(i.split()) for i in items if i.strip()]


def _code(part: Part, body: str) -> dict[str, str]:
    """The part's fenced blocks (its language's, else any) after their intro."""
    parsed = parse(body + "\n")
    fences = [f for f in parsed.fences if f.language == part.language] or list(parsed.fences)
    if not fences:
        return {"intro": " ".join(body.split()), "path": "", "code": ""}
    lines = body.splitlines()
    intro = " ".join(" ".join(lines[: fences[0].line]).split())
    blocks = [rejoined(f.code.strip("\n")) for f in fences]
    path = ""
    if len(blocks) == 1:
        first, _, rest = blocks[0].partition("\n")
        match = _PATH_LINE.match(first)
        if match:
            path, blocks[0] = match.group(1), rest.strip("\n")
    # An intro that only names the file ("**`relay/main.py`**") is the path, said once.
    named = intro.strip("*`_: ")
    if named and re.fullmatch(r"[\w./@-]+\.\w{1,5}", named) and path in ("", named):
        path, intro = named, ""
    return {"intro": intro, "path": path, "code": "\n\n".join(b for b in blocks if b.strip())}


def _table(part: Part, body: str) -> list[dict[str, str]]:
    tables = parse(body + "\n").tables
    if not tables:
        return []
    table = tables[0]
    keys = column_keys(part)
    by_title = {_key(c): k for c, k in zip(part.columns, keys, strict=True)}
    order = [by_title.get(_key(h)) for h in table.header]
    if sum(k is not None for k in order) < 2:
        order = list(keys[: len(table.header)])
    rows: list[dict[str, str]] = []
    for cells in table.rows:
        row = dict.fromkeys(keys, "")
        for key, cell in zip(order, cells, strict=False):
            if key is not None:
                row[key] = cell.replace("\\|", "|")
        if any(row.values()):
            rows.append(row)
    return rows


def _file(item: str) -> dict[str, str]:
    match = _FILE.match(item)
    if match is None:
        return {"path": item.split()[0].strip("`") if item.split() else "", "holds": ""}
    holds = (match.group("inner") or match.group("rest") or "").strip()
    return {"path": match.group("quoted") or match.group("bare"), "holds": holds.rstrip(".")}


def _diagram(body: str) -> dict[str, Any]:
    components: list[dict[str, str]] = []
    edges: list[dict[str, str]] = []
    for item in _items(body):
        edge = _EDGE.match(item.replace("**", ""))
        if edge:
            edges.append(
                {
                    "source": edge.group("src").strip(),
                    "target": edge.group("dst").strip(),
                    "label": (edge.group("label") or "").strip().rstrip("."),
                }
            )
            continue
        name, _, duty = item.replace("**", "").partition(":")
        if not duty:
            name, _, duty = item.partition(" - ")
        components.append({"name": name.strip().strip("`"), "responsibility": duty.strip()})
    return {"components": components, "edges": edges}


def _fit(
    value: Any, node: dict[str, Any], defs: dict[str, Any], where: str, notes: list[str]
) -> Any:
    """`value` held to the bounds of its schema `node`: strings to their last whole
    sentence inside `maxLength` (else their last whole words), lists to `maxItems`."""
    node = resolve_ref(node, defs)
    if isinstance(value, dict):
        props = node.get("properties", {})
        return {
            k: _fit(v, props.get(k, {}), defs, f"{where}.{k}" if where else k, notes)
            for k, v in value.items()  # pyright: ignore[reportUnknownVariableType]
        }
    if isinstance(value, list):
        most = node.get("maxItems")
        items: list[Any] = list(value)  # pyright: ignore[reportUnknownArgumentType]
        if isinstance(most, int) and len(items) > most:
            notes.append(f"{where}: kept the first {most} of {len(items)} items")
            items = items[:most]
        inner = node.get("items", {})
        return [_fit(v, inner, defs, where, notes) for v in items]
    if isinstance(value, str):
        bound = node.get("maxLength")
        if isinstance(bound, int) and len(value) > bound:
            if where.endswith(".code"):
                notes.append(f"{where}: kept its whole lines within {bound} characters")
                end = value.rfind("\n", 0, bound + 1)
                return value[:end].rstrip() if end > 0 else ""
            notes.append(f"{where}: shortened to its last whole sentence within {bound} characters")
            return shorten(value, bound)
    return value


def shorten(text: str, bound: int) -> str:
    """`text` ended at its last whole sentence within `bound`, else its last whole words."""
    head = text[:bound]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= bound // 3:
        return head[: ends[-1]].rstrip()
    cut = head.rsplit(None, 1)[0] if " " in head.strip() else head
    return cut.rstrip(" ,;:-(")


# --- the shape a reply is held to --------------------------------------------


def _loose(section: Section, line_chars: int) -> Section:
    """`section` with twice each part's characters, and code at `line_chars` a line."""
    parts = [
        p.model_copy(
            update={"max_chars": code_lines_bound(p.max_chars) * line_chars}
            if p.kind == "code"
            else {"max_chars": p.max_chars * 2}
        )
        for p in section.parts
    ]
    return section.model_copy(update={"parts": parts})


def markdown_shape(
    section: Section, cites: bool, budget: int | None
) -> tuple[type[BaseModel], dict[str, Any]]:
    """The model a markdown reply is validated against, and the bounds its grammar holds.

    Only the prompt states a part's size; the grammar holds strings to twice the
    template's bounds and code to lines of at most 200 characters. With `budget`
    (`schema_budget`) the bounds are fitted as a JSON reply's are, lines counted
    at 41 characters and intros at the template's bound, so a typical reply ends
    within max_tokens; code is then held by its lines, never cut by characters,
    and an intro to twice its fitted bound. "Based on" keeps the section model's bound
    (`section_model`, never fitted): `based_on` reads it against the TDD's
    headings, and shortened first it lost the heading it named.
    """
    model = section_model(_loose(section, CODE_LINE_CHARS + 1), cites, 2 * INTRO_CHARS)
    estimate = section_model(_loose(section, TYPICAL_LINE), cites).model_json_schema()
    bounds = copy.deepcopy(fit_schema(estimate, budget) if budget is not None else estimate)
    defs = bounds.get("$defs", {})
    for part in section.parts:
        if part.kind == "code":
            fields = resolve_ref(bounds["properties"][part.id], defs)["properties"]
            lines = fitted_lines(int(fields["code"]["maxLength"]))
            fields["code"]["maxLength"] = lines * (CODE_LINE_CHARS + 1)
            # An intro is fitted at the template's bound (half again the words
            # its ask states), then held to twice its fitted bound. Held to the
            # fitted bound itself, 162-244 characters, 3 to 9 intros a run were
            # cut there and trimmed; doubled before the fit, as the other
            # strings are, it took table rows and code lines from the section.
            fields["intro"]["maxLength"] = 2 * int(fields["intro"]["maxLength"])
    bounds["properties"]["tdd_refs"] = copy.deepcopy(estimate["properties"]["tdd_refs"])
    return model, bounds


def _code_lines(schema: dict[str, Any], part: Part) -> int:
    """The lines the bounds let `part`'s code run to."""
    node = resolve_ref(schema["properties"][part.id], schema.get("$defs", {}))
    return int(node["properties"]["code"]["maxLength"]) // (CODE_LINE_CHARS + 1)


def markdown_grammar(section: Section, schema: dict[str, Any], cites: bool = False) -> str:
    """A GBNF grammar for a section written as markdown under its parts' sub-headings.

    Holds the shape (each sub-heading once, in order; a part's kind under it:
    a table's own header, a fence around code, counted items) and every string
    to `schema`'s bounds (`markdown_shape`'s), and leaves code as lines of
    plain text: nothing JSON-escaped. For llama.cpp servers (`--structured grammar`).
    """
    g = GrammarRules()
    defs = schema.get("$defs", {})
    props = schema.get("properties", {})
    bodies = [
        g.seq(gbnf_literal(f"### {p.title}\n\n"), _part_rule(g, p, props.get(p.id, {}), defs))
        for p in section.parts
    ]
    refs, most = props["tdd_refs"], int(props["tdd_refs"]["maxItems"])
    ref = g.seq('"- "', g.chars(1, int(refs["items"]["maxLength"]), "[^\\n]"), '"\\n"')
    bodies.append(g.seq(gbnf_literal("### Based on\n\n"), g.repeat(g.rule("ref", ref), 0, most)))
    del cites  # the ids of research notes are items of "Based on" like the TDD's headings
    g.rules["root"] = ' "\\n" '.join(bodies)
    return g.text()


def _part_rule(g: GrammarRules, part: Part, node: dict[str, Any], defs: dict[str, Any]) -> str:
    node = resolve_ref(node, defs)
    least = int(node.get("minItems", part.min_items))
    most = int(node.get("maxItems", part.max_items))
    if part.kind == "text":
        each = max(40, (int(node.get("maxLength", part.max_chars)) - 2) // 2)
        para = g.rule("para", g.seq("[^\\n#|`>-]", g.chars(0, each - 1, "[^\\n]"), '"\\n"'))
        return g.seq(para, g.repeat(g.rule("more-para", g.seq('"\\n"', para)), 0, 1))
    if part.kind == "list":
        bound = int(resolve_ref(node.get("items", {}), defs).get("maxLength", 300))
        item = g.rule("item", g.seq('"- "', "[^\\n]", g.chars(0, bound - 1, "[^\\n]"), '"\\n"'))
        return g.repeat(item, least, most)
    if part.kind == "code":
        inner = resolve_ref(node.get("properties", {}).get("intro", {}), defs)
        intro = g.seq(
            "[^\\n#|`>-]", g.chars(0, int(inner.get("maxLength", INTRO_CHARS)) - 1, "[^\\n]")
        )
        lines = int(resolve_ref(node.get("properties", {}).get("code", {}), defs)["maxLength"])
        return g.seq(intro, '"\\n\\n"', fenced(g, part.language, lines // (CODE_LINE_CHARS + 1)))
    if part.kind == "table":
        row_node = resolve_ref(node.get("items", {}), defs)
        cells = [
            g.seq(
                '" "', g.chars(1, int(resolve_ref(c, defs).get("maxLength", 200)), "[^|\\n]"), '"|"'
            )
            for c in row_node.get("properties", {}).values()
        ]
        head = (
            "| "
            + " | ".join(part.columns)
            + " |\n|"
            + "|".join("---" for _ in part.columns)
            + "|\n"
        )
        row = g.rule("row", g.seq('"|"', *cells, '"\\n"'))
        return g.seq(gbnf_literal(head), g.repeat(row, least, most))
    if part.kind == "tree":
        file_node = resolve_ref(node.get("items", {}), defs).get("properties", {})
        path = g.chars(
            1, int(resolve_ref(file_node.get("path", {}), defs).get("maxLength", 60)), "[^`\\n ]"
        )
        holds = g.chars(
            1, int(resolve_ref(file_node.get("holds", {}), defs).get("maxLength", 90)), "[^\\n]"
        )
        row = g.rule("file", g.seq('"- `"', path, '"` - "', holds, '"\\n"'))
        return g.repeat(row, least, most)
    return _diagram_rule(g, node, defs)


def _diagram_rule(g: GrammarRules, node: dict[str, Any], defs: dict[str, Any]) -> str:
    props = node.get("properties", {})
    boxes = resolve_ref(props.get("components", {}), defs)
    arrows = resolve_ref(props.get("edges", {}), defs)
    box = resolve_ref(boxes.get("items", {}), defs).get("properties", {})
    arrow = resolve_ref(arrows.get("items", {}), defs).get("properties", {})

    def bound(field: dict[str, Any], default: int) -> int:
        return int(resolve_ref(field, defs).get("maxLength", default))

    name = g.chars(1, bound(box.get("name", {}), 30), "[^`\\n]")
    duty = g.chars(1, bound(box.get("responsibility", {}), 120), "[^\\n]")
    label = g.chars(1, bound(arrow.get("label", {}), 30), "[^\\n]")
    component = g.rule("box", g.seq('"- `"', name, '"`: "', duty, '"\\n"'))
    edge = g.rule("arrow", g.seq('"- `"', name, '"` -> `"', name, '"`: "', label, '"\\n"'))
    return g.seq(
        '"Components:\\n"',
        g.repeat(component, int(boxes.get("minItems", 1)), int(boxes.get("maxItems", 6))),
        '"\\nFlows:\\n"',
        g.repeat(edge, int(arrows.get("minItems", 0)), int(arrows.get("maxItems", 7))),
    )
