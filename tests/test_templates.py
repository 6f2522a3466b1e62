"""Built-in templates load and stay within size bounds; broken ones fail clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.core.errors import ConfigError
from agent.core.templates import (
    Section,
    Template,
    builtin_names,
    get_template,
    load_template_file,
    section_model,
)

TID_SECTIONS = [
    "implementation_strategy",
    "code_structure",
    "key_algorithms",
    "integration_points",
    "configuration",
    "testing_implementation",
    "development_tools",
    "code_examples",
    "performance_implementation",
    "deployment_considerations",
]
TID_TITLES = [
    "Implementation Strategy",
    "Code Structure",
    "Key Algorithms",
    "Integration Points",
    "Configuration",
    "Testing Implementation",
    "Development Tools",
    "Code Examples",
    "Performance Implementation",
    "Deployment Considerations",
]
SPEC_SECTIONS = [
    "tldr",
    "technology_stack",
    "architecture",
    "data_model",
    "api_specification",
    "cli_specification",
    "security",
    "error_handling",
    "performance_requirements",
    "testing_strategy",
]

# A 1.5B model on CPU writes ~15 tokens/s: 3,600 characters of content is
# ~1,000 tokens of JSON, over a minute, as long as one section call should take.
SECTION_CHAR_LIMIT = 3600
# 10,000 characters of content is about 1,430 words at the 7 characters a word
# the models here write (agent/draft/prompting.py): under the spec's 1,500.
SPEC_CHAR_LIMIT = 10_000


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.removeprefix("#/$defs/")
    return schema["$defs"][name]


def _worst_chars(schema: dict[str, Any], node: dict[str, Any]) -> int:
    """The most characters of string content a value of this schema can hold."""
    node = _resolve(schema, node)
    kind = node.get("type")
    if kind == "string":
        return node["maxLength"]
    if kind == "array":
        return node["maxItems"] * _worst_chars(schema, node["items"])
    if kind == "object":
        return sum(_worst_chars(schema, p) for p in node["properties"].values())
    raise AssertionError(f"unexpected schema node {node}")


def section_worst_chars(section: Section) -> int:
    """Worst-case rendered characters of one section, as its output schema bounds them.

    `tdd_refs` is traceability, not document text, so it does not count.
    """
    schema = section_model(section).model_json_schema()
    return sum(
        _worst_chars(schema, prop)
        for key, prop in schema["properties"].items()
        if key != "tdd_refs"
    )


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(_walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_walk(value, f"{path}/{i}"))
    return found


def _all_sections() -> list[tuple[str, Section]]:
    return [(name, s) for name in builtin_names() for s in get_template(name).sections]


# --- built-in templates ------------------------------------------------------------


def test_builtin_names_are_tid_and_spec() -> None:
    assert builtin_names() == ["spec", "tid"]


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_template_loads(name: str) -> None:
    template = get_template(name)
    assert isinstance(template, Template)
    assert template.name == name
    assert template.source.endswith(f"{name}.yaml")
    assert "{feature}" in template.doc_title
    assert template.checklist


def test_tid_has_the_ten_seed_sections_in_order() -> None:
    tid = get_template("tid")
    assert [s.id for s in tid.sections] == TID_SECTIONS
    assert [s.title for s in tid.sections] == TID_TITLES
    assert [tid.number(s) for s in TID_SECTIONS] == list(range(1, 11))
    assert (tid.doc_kind, tid.header) == ("TID", "tid")
    assert tid.doc_title == "Technical Implementation Document: {feature}"
    assert len(tid.checklist) == 10
    assert all(2 <= len(s.parts) <= 4 for s in tid.sections)


def test_tid_checklist_covers_every_section() -> None:
    tid = get_template("tid")
    covered = {s for item in tid.checklist for s in item.sections}
    assert covered == set(TID_SECTIONS)


def test_tid_parts_the_brief_names() -> None:
    tid = get_template("tid")
    parts = {p.id: p for s in tid.sections for p in s.parts}
    assert parts["directory_structure"].kind == "tree"
    assert parts["key_class_definitions"].language == "python"
    assert parts["required_dependencies"].columns == ["Package", "Version", "Used For"]
    assert "exact version" in parts["required_dependencies"].guidance


def test_spec_shape() -> None:
    spec = get_template("spec")
    assert [s.id for s in spec.sections] == SPEC_SECTIONS
    tldr = spec.sections[0]
    assert (tldr.title, tldr.numbered, [p.kind for p in tldr.parts]) == ("TL;DR", False, ["text"])
    assert spec.number("technology_stack") == 1
    assert spec.number("testing_strategy") == 9
    assert (spec.doc_kind, spec.header, spec.max_words) == ("SPEC", "spec", 1500)
    assert spec.doc_title == "Technical Implementation Spec: {feature}"
    assert "related_documents" not in [s.id for s in spec.sections]
    for section_id in ("api_specification", "cli_specification"):
        assert "Not applicable: <reason>" in spec.section(section_id).guidance
    tables = {p.id: p.columns for s in spec.sections for p in s.parts if p.kind == "table"}
    assert tables["responsibilities"] == ["Component", "Purpose", "Key Functions"]
    assert tables["error_codes"] == ["Code", "Meaning", "User Action"]
    assert tables["targets"] == ["Metric", "Target", "Measurement"]


def test_spec_worst_case_fits_the_word_limit() -> None:
    spec = get_template("spec")
    total = sum(section_worst_chars(s) for s in spec.sections)
    assert total <= SPEC_CHAR_LIMIT, f"spec worst case is {total} characters"


@pytest.mark.parametrize(("name", "section"), _all_sections(), ids=lambda v: getattr(v, "id", v))
def test_section_worst_case_is_bounded(name: str, section: Section) -> None:
    worst = section_worst_chars(section)
    assert worst <= SECTION_CHAR_LIMIT, f"{name}.{section.id} can produce {worst} characters"


@pytest.mark.parametrize(("name", "section"), _all_sections(), ids=lambda v: getattr(v, "id", v))
def test_section_schema_bounds_every_string_and_array(name: str, section: Section) -> None:
    schema = section_model(section).model_json_schema()
    nodes = _walk(schema)
    for where, node in nodes:
        if node.get("type") == "string":
            assert "maxLength" in node, f"{name}.{section.id}{where}: unbounded string"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{name}.{section.id}{where}: unbounded array"


# --- broken and user templates -------------------------------------------------------


def _minimal() -> dict[str, Any]:
    return {
        "name": "mine",
        "version": "1.0",
        "title": "My template",
        "description": "A test template.",
        "doc_title": "Notes: {feature}",
        "doc_kind": "NOTE",
        "system": "Write JSON only.",
        "sections": [
            {
                "id": "overview",
                "title": "Overview",
                "guidance": "What the feature does.",
                "parts": [
                    {"id": "summary", "title": "Summary", "kind": "text", "guidance": "Prose."},
                    {
                        "id": "facts",
                        "title": "Facts",
                        "kind": "table",
                        "columns": ["Name", "Value"],
                        "guidance": "Key numbers.",
                    },
                ],
            }
        ],
        "checklist": [{"id": "clear", "text": "Overview is clear", "sections": ["overview"]}],
    }


def _write(tmp_path: Path, data: Any, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_user_template_by_path(tmp_path: Path) -> None:
    path = _write(tmp_path, _minimal())
    template = get_template(str(path))
    assert template.name == "mine"
    assert template.source == str(path)
    assert template.number("overview") == 1
    schema = section_model(template.sections[0]).model_json_schema()
    assert list(schema["properties"]) == ["summary", "facts", "tdd_refs"]


def _broken_no_sections() -> Any:
    data = _minimal()
    del data["sections"]
    return data


def _broken_table_without_columns() -> Any:
    data = _minimal()
    del data["sections"][0]["parts"][1]["columns"]
    return data


def _broken_unknown_checklist_section() -> Any:
    data = _minimal()
    data["checklist"][0]["sections"] = ["nowhere"]
    return data


def _broken_repeated_section() -> Any:
    data = _minimal()
    data["sections"].append(dict(data["sections"][0]))
    return data


def _broken_code_without_language() -> Any:
    data = _minimal()
    data["sections"][0]["parts"][0]["kind"] = "code"
    return data


def _broken_min_above_max() -> Any:
    data = _minimal()
    data["sections"][0]["parts"][1].update(min_items=5, max_items=3)
    return data


def _broken_extra_field() -> Any:
    data = _minimal()
    data["sections"][0]["colour"] = "blue"
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_broken_no_sections(), ["field sections", "required"]),
        (_broken_table_without_columns(), ["sections.0.parts.1", "columns"]),
        (_broken_unknown_checklist_section(), ["field checklist:", "'clear'", "nowhere"]),
        (_broken_repeated_section(), ["field sections:", "repeat", "overview"]),
        (_broken_code_without_language(), ["sections.0.parts.0", "language"]),
        (_broken_extra_field(), ["sections.0.colour"]),
        (_broken_min_above_max(), ["sections.0.parts.1", "min_items"]),
        (["name", "sections"], ["must be a YAML mapping"]),
    ],
    ids=[
        "no-sections",
        "table-no-columns",
        "unknown-checklist",
        "repeated-section",
        "code-no-language",
        "extra-field",
        "min-above-max",
        "list-at-top",
    ],
)
def test_broken_template_names_file_and_field(
    tmp_path: Path, data: Any, expected: list[str]
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_template_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert "Value error" not in message
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\nsections: {", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        get_template(str(path))
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        get_template(str(path))
    assert str(path) in str(info.value)


def test_unknown_template_lists_the_builtins() -> None:
    with pytest.raises(ConfigError) as info:
        get_template("nope")
    message = str(info.value)
    assert "'nope'" in message
    assert "tid" in message
    assert "spec" in message


def test_table_widths_share_a_row_between_its_columns() -> None:
    from agent.core.templates import Part, cell_chars
    from agent.draft.prompting import describe_fields

    spec = get_template("spec")
    errors = next(p for p in spec.section("error_handling").parts if p.id == "error_codes")
    assert errors.widths == [1, 2, 2]
    # A row's characters as before (760 over 5 rows), the code's share the smallest.
    assert cell_chars(errors) == [30, 60, 60]
    schema = section_model(spec.section("error_handling")).model_json_schema()
    row = schema["$defs"]["error_handling_error_codes_row"]["properties"]
    assert [row[k]["maxLength"] for k in ("code", "meaning", "user_action")] == [30, 60, 60]
    # The ask states each column's words.
    fields = describe_fields(spec.section("error_handling"))
    assert "Code (at most 3 words), Meaning (at most 6 words)" in fields
    equal = errors.model_copy(update={"widths": []})
    assert cell_chars(equal) == [50, 50, 50]
    with pytest.raises(ValueError, match="one share per column"):
        Part.model_validate({**errors.model_dump(), "widths": [1, 2]})
