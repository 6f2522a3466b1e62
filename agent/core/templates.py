"""Document templates as data: the Template model, loading, and section schemas.

A template is a YAML file under `prompts/templates/` (or a user's own path).
It lists the document's sections in order; each section lists its parts, and
each part has a kind that decides both the JSON shape the model must return
and how `assemble` renders it. Templates never execute code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from agent.core.diagram import LABEL_CHARS, NAME_CHARS, RESPONSIBILITY_CHARS
from agent.core.errors import ConfigError
from agent.core.files import read_text
from agent.core.filetree import HOLDS_CHARS, PATH_CHARS

# `diagram`: components and labelled edges as data, drawn by code (agent/core/diagram.py).
# `tree`: files as paths with what each holds, drawn by code (agent/core/filetree.py).
PartKind = Literal["text", "code", "table", "list", "diagram", "tree"]
_ID = r"^[a-z][a-z0-9_]*$"
# A code part's intro: one or two sentences before the code.
INTRO_CHARS = 300
# A template is a page of YAML; anything far larger is not one.
MAX_TEMPLATE_BYTES = 1024 * 1024


class Part(BaseModel):
    """One sub-heading of a section and the kind of content under it."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=_ID, max_length=40)]
    title: Annotated[str, Field(min_length=1, max_length=80)]
    kind: PartKind
    guidance: Annotated[str, Field(min_length=1, max_length=600)]
    # Bounds the model's output: small models repeat until they hit a limit.
    max_chars: Annotated[int, Field(ge=40, le=6000)] = 900
    language: Annotated[str, Field(max_length=20)] = ""
    columns: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=6
    )
    # A table's columns' shares of each row's characters (`[1, 2, 2]`: a code,
    # then two sentences); none, equal shares. Equal, a row of 50-character
    # cells cut "Unauthorized: the user does not have the necessary" while its
    # Code column held "401".
    widths: list[Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=list, max_length=6)
    # Up to 20 for a tree's files; a list or table that long is a wall of text.
    max_items: Annotated[int, Field(ge=1, le=20)] = 6
    # The fewest list items, table rows or diagram boxes. Fitting a reply into
    # a small model's token limit drops items before it shortens strings, down
    # to this: a part whose guidance asks for exactly N items says N here.
    min_items: Annotated[int, Field(ge=1, le=20)] = 1

    @model_validator(mode="after")
    def _kind_fields(self) -> Part:
        if self.min_items > self.max_items:
            raise ValueError("`min_items` must not be above `max_items`")
        if self.kind == "table" and len(self.columns) < 2:
            raise ValueError("a table part needs at least two `columns`")
        if self.kind != "table" and self.columns:
            raise ValueError("`columns` is only for parts of kind table")
        if self.widths and len(self.widths) != len(self.columns):
            raise ValueError("`widths` needs one share per column")
        if self.kind == "code" and not self.language:
            raise ValueError("a code part needs a `language` (python, bash, yaml, text, ...)")
        return self


class Section(BaseModel):
    """One top-level section of the document, drafted by one LLM call."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=_ID, max_length=40)]
    title: Annotated[str, Field(min_length=1, max_length=80)]
    numbered: bool = True
    guidance: Annotated[str, Field(min_length=1, max_length=1500)]
    parts: list[Part] = Field(min_length=1, max_length=6)
    # What in a TDD makes this section apply, so that a reply saying "Not
    # applicable" is asked again and a document saying it fails review:
    # http_routes, the TDD names routes (`POST /api/v1/events`).
    applies_if: Literal["http_routes"] | None = None

    @model_validator(mode="after")
    def _unique_parts(self) -> Section:
        ids = [p.id for p in self.parts]
        if len(ids) != len(set(ids)):
            raise ValueError(f"part ids repeat in section {self.id!r}")
        return self


class ChecklistItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=_ID, max_length=40)]
    text: Annotated[str, Field(min_length=1, max_length=300)]
    sections: list[str] = Field(default_factory=list, description="section ids it concerns")


class Template(BaseModel):
    """A document template: header, ordered sections, quality checklist."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=_ID, max_length=40)]
    version: Annotated[str, Field(pattern=r"^\d+(\.\d+)*$")]
    title: Annotated[str, Field(min_length=1, max_length=120)]
    description: Annotated[str, Field(min_length=1, max_length=400)]
    doc_title: Annotated[str, Field(min_length=1, max_length=120)] = Field(
        description="document heading; `{feature}` is replaced by the feature name"
    )
    doc_kind: Annotated[str, Field(pattern=r"^[A-Z]{2,8}$")] = Field(
        description="the letters in output names: TID gives 002_FTID|Name.md"
    )
    header: Literal["tid", "spec"] = "tid"
    max_words: Annotated[int, Field(ge=100, le=50000)] | None = None
    system: Annotated[str, Field(min_length=1, max_length=3000)]
    sections: list[Section] = Field(min_length=1, max_length=16)
    checklist: list[ChecklistItem] = Field(default_factory=list, max_length=20)
    source: str = Field(default="", exclude=True, description="where it was loaded from")

    # Field validators, not one model validator, so an error names its field.
    @field_validator("sections")
    @classmethod
    def _unique_sections(cls, sections: list[Section]) -> list[Section]:
        ids = [s.id for s in sections]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"section ids repeat: {repeated}")
        return sections

    @field_validator("checklist")
    @classmethod
    def _known_sections(
        cls, checklist: list[ChecklistItem], info: ValidationInfo
    ) -> list[ChecklistItem]:
        sections: list[Section] | None = info.data.get("sections")
        if sections is None:  # already reported as invalid
            return checklist
        ids = {s.id for s in sections}
        for item in checklist:
            unknown = [s for s in item.sections if s not in ids]
            if unknown:
                raise ValueError(f"checklist item {item.id!r} names unknown sections {unknown}")
        return checklist

    def section(self, section_id: str) -> Section:
        for s in self.sections:
            if s.id == section_id:
                return s
        raise ConfigError(f"template {self.name!r} has no section {section_id!r}")

    def number(self, section_id: str) -> int | None:
        """The printed number of a section (numbered sections count from 1)."""
        n = 0
        for s in self.sections:
            if s.numbered:
                n += 1
            if s.id == section_id:
                return n if s.numbered else None
        return None


# --- loading -------------------------------------------------------------------


def _builtin_dir() -> Path:
    return Path(str(resources.files("prompts"))) / "templates"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


def _where(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    return f"field {loc}: {msg}"


def load_template_file(path: Path) -> Template:
    """Load and validate one template file; errors name the file and the field."""
    if not Path(path).exists() and not Path(path).is_symlink():
        raise ConfigError(f"template file {path} does not exist")
    text = read_text(path, MAX_TEMPLATE_BYTES, "template YAML file", remember=True)
    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as e:
        reason = str(e).splitlines()[0]
        raise ConfigError(f"template {path} is not valid YAML: {reason}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"template {path} must be a YAML mapping with name, sections, ...")
    try:
        template = Template.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"template {path}: {_where(e)}") from None
    return template.model_copy(update={"source": str(path)})


@cache
def _builtin(name: str) -> Template:
    return load_template_file(_builtin_dir() / f"{name}.yaml")


def get_template(name_or_path: str) -> Template:
    """A built-in template by name (`tid`, `spec`) or a user's file by path."""
    if name_or_path in builtin_names():
        return _builtin(name_or_path)
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return load_template_file(path)
    names = ", ".join(builtin_names())
    raise ConfigError(f"unknown template {name_or_path!r}: use one of {names} or a path to a .yaml")


# --- section output schemas ------------------------------------------------------


def _slug_key(column: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")
    return key or "col"


def column_keys(part: Part) -> list[str]:
    return [_slug_key(c) for c in part.columns]


def table_rows(
    section: Section, content: dict[str, Any], key: str
) -> Iterator[tuple[Part, list[dict[str, Any]]]]:
    """Each table part of `section` with a column `key`, and its rows in `content`."""
    for part in section.parts:
        rows = content.get(part.id)
        if part.kind == "table" and key in column_keys(part) and isinstance(rows, list):
            yield part, [r for r in rows if isinstance(r, dict)]  # pyright: ignore[reportUnknownVariableType]


def _part_type(section: Section, part: Part, intro_chars: int) -> tuple[Any, Any]:
    desc = f"{part.title}: {part.guidance}"
    limit = part.max_chars
    if part.kind == "text":
        return (str, Field(description=desc, max_length=limit))
    if part.kind == "list":
        item = Annotated[str, Field(max_length=max(60, limit // part.max_items))]
        return (
            list[item],
            Field(description=desc, min_length=part.min_items, max_length=part.max_items),
        )
    if part.kind == "code":
        block = create_model(
            f"{section.id}_{part.id}_code",
            __config__=ConfigDict(extra="forbid"),
            intro=(
                str,
                Field(description="one or two sentences before the code", max_length=intro_chars),
            ),
            path=(
                str,
                Field(description="file path the code belongs in, or empty", max_length=120),
            ),
            code=(str, Field(description=f"{part.language} code only", max_length=limit)),
        )
        return (block, Field(description=desc))
    if part.kind == "diagram":
        return _diagram_type(section, part, desc)
    if part.kind == "tree":
        return _tree_type(section, part, desc)
    cells: dict[str, Any] = {
        key: (str, Field(description=col, max_length=cell))
        for key, col, cell in zip(column_keys(part), part.columns, cell_chars(part), strict=True)
    }
    row = create_model(
        f"{section.id}_{part.id}_row", __config__=ConfigDict(extra="forbid"), **cells
    )
    return (
        list[row],
        Field(description=desc, min_length=part.min_items, max_length=part.max_items),
    )


def cell_chars(part: Part) -> list[int]:
    """Each column's bound: its share of a row's characters (`widths`), 20 to 200."""
    shares = part.widths or [1] * len(part.columns)
    whole = part.max_items * sum(shares)
    return [max(20, min(200, part.max_chars * w // whole)) for w in shares]


def _diagram_type(section: Section, part: Part, desc: str) -> tuple[Any, Any]:
    """Components (at most `max_items`) and edges (one more); code draws the diagram."""
    duty = max(40, min(RESPONSIBILITY_CHARS, part.max_chars // part.max_items - NAME_CHARS))
    component = create_model(
        f"{section.id}_{part.id}_component",
        __config__=ConfigDict(extra="forbid"),
        name=(str, Field(description="its name as the TDD spells it", max_length=NAME_CHARS)),
        responsibility=(str, Field(description="what it does, a short phrase", max_length=duty)),
    )
    edge = create_model(
        f"{section.id}_{part.id}_edge",
        __config__=ConfigDict(extra="forbid"),
        source=(str, Field(description="the component name it starts at", max_length=NAME_CHARS)),
        target=(str, Field(description="the component name it points to", max_length=NAME_CHARS)),
        label=(
            str,
            Field(description="what flows: a call, data, an event", max_length=LABEL_CHARS),
        ),
    )
    fields: dict[str, Any] = {
        "components": (
            list[component],
            Field(
                description="the boxes, in data-flow order",
                min_length=part.min_items,
                max_length=part.max_items,
            ),
        ),
        "edges": (
            list[edge],
            Field(description="the arrows, with labels", max_length=min(13, part.max_items + 1)),
        ),
    }
    block = create_model(
        f"{section.id}_{part.id}_diagram", __config__=ConfigDict(extra="forbid"), **fields
    )
    return (block, Field(description=desc))


def _tree_type(section: Section, part: Part, desc: str) -> tuple[Any, Any]:
    """Files as rows (a path and what the file holds); code draws the tree."""
    holds = max(30, min(HOLDS_CHARS, part.max_chars // part.max_items - PATH_CHARS // 2))
    row = create_model(
        f"{section.id}_{part.id}_file",
        __config__=ConfigDict(extra="forbid"),
        path=(
            str,
            Field(description="the file's path from the repository root", max_length=PATH_CHARS),
        ),
        holds=(str, Field(description="what the file holds, a short phrase", max_length=holds)),
    )
    return (
        list[row],
        Field(description=desc, min_length=part.min_items, max_length=part.max_items),
    )


def section_model(
    section: Section, cites: bool = False, intro_chars: int = INTRO_CHARS
) -> type[BaseModel]:
    """The pydantic model one section's LLM call must return.

    One field per template part, in template order, plus `tdd_refs`: the TDD
    headings the section drew on (traceability), and with research, `note_refs`:
    the research notes it used, which the References appendix lists. Every list
    and string is bounded so small models cannot loop until max_tokens.
    """
    fields: dict[str, Any] = {p.id: _part_type(section, p, intro_chars) for p in section.parts}
    fields["tdd_refs"] = (
        list[Annotated[str, Field(max_length=80)]],
        Field(
            description="headings of the TDD this section is based on, copied exactly",
            max_length=6,
        ),
    )
    if cites:
        fields["note_refs"] = (
            list[Annotated[str, Field(pattern=r"^R[0-9]{1,2}$")]],
            Field(description="ids of the research notes this section used", max_length=6),
        )
    return create_model(f"Section_{section.id}", __config__=ConfigDict(extra="forbid"), **fields)


# How a template lets a section answer that it does not apply ("Not applicable:
# <reason>", spec.yaml's API and CLI sections), in markdown or not.
_NOT_APPLICABLE = re.compile(r"[\s>*_`-]*not applicable\b", re.IGNORECASE)


def opens_not_applicable(text: str) -> bool:
    """Whether `text` opens with "Not applicable", bold, quoted or listed as it may be."""
    return bool(_NOT_APPLICABLE.match(text))


def section_heading(template: Template, section: Section) -> str:
    """The heading a section has in the document: `3. Title`, numbered by the template."""
    number = template.number(section.id)
    return f"{number}. {section.title}" if number is not None else section.title
