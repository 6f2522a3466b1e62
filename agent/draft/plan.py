"""What each section call starts from: its schema, its messages, the shared prefix.

Built before any call, so checkpoints, dry runs and provider batches key and
cost a section exactly as the live draft sends it. Imports core, providers and
the prompt files; never the calls, a later stage or a front end.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.core.records import CallRecord
from agent.core.tdd import Tdd, applies, excerpt, names_for, tdd_files, tdd_names, tdd_routes
from agent.core.templates import Section, Template, column_keys, section_model
from agent.core.tokens import count_tokens
from agent.document.error_codes import code_lines
from agent.document.versions import given_versions
from agent.draft.prompting import markdown_message, section_message, system_message
from agent.providers.base import Message, Provider, fitted_schema

PROMPT_ID = "draft_section"
# The same section asked for as markdown under its sub-headings (`--draft-as markdown`).
MARKDOWN_PROMPT_ID = "draft_markdown"
DraftAs = Literal["json", "markdown"]
# tiktoken counts are an estimate for other tokenizers (SmolLM2's and Qwen's
# run up to ~25% longer on markdown), so leave headroom when fitting.
_TOKENIZER_SLACK = 1.3
# TDD names listed in each section's ask. Told only "use its names", Qwen2.5-
# Coder-1.5B used 3 of the 36 in corpus TDD 006 and 20 of 30 in the example.
NAMES_PER_SECTION = 20


@functools.lru_cache(maxsize=512)
def _section_schema(section_json: str, cites: bool) -> tuple[type[BaseModel], dict[str, Any]]:
    model = section_model(Section.model_validate_json(section_json), cites)
    return model, model.model_json_schema()


def section_schema(section: Section, cites: bool = False) -> tuple[type[BaseModel], dict[str, Any]]:
    """The section's pydantic model and its JSON schema, built once per distinct section.

    Building them costs milliseconds of pydantic work per call, which a batch of
    hundreds of calls would otherwise spend on the event loop. Callers must not
    mutate the schema (providers copy before they adapt it).
    """
    return _section_schema(section.model_dump_json(), cites)


class SectionDraft(BaseModel):
    """A validated section: `content` validated against section_model(section).

    A code part whose code did not parse even after its repair call has an
    empty `code` and a `dropped` note, which the document shows instead.
    """

    section_id: str
    content: dict[str, Any]
    tdd_refs: list[str] = Field(default_factory=list)
    note_refs: list[str] = Field(default_factory=list)
    calls: list[CallRecord] = Field(default_factory=list)
    # What drafting changed after validation: text trimmed back to its last
    # sentence, code repaired or dropped.
    notes: list[str] = Field(default_factory=list)


class DraftPlan(BaseModel):
    """The messages each section call starts from (saved for inspection)."""

    shared_prefix: bool
    tdd_tokens: int
    requests: dict[str, list[Message]]
    # With research notes in the prefix, section models also say which notes they used.
    cites: bool = False
    # Per section, what in the TDD makes it apply (`applies_if`): a reply saying
    # "Not applicable" there is asked again.
    applies: dict[str, list[str]] = Field(default_factory=dict)
    # Per section with a file tree, the files the TDD gives a path for and what
    # each holds: a tree that leaves one out gets it added (`tdd_files`).
    files: dict[str, list[tuple[str, str]]] = Field(default_factory=dict)
    # With a Version column in some table, each name the TDD and notes write a
    # version after, and those versions: a cell none gives is marked (`check_versions`).
    versions: dict[str, list[str]] = Field(default_factory=dict)
    # The TDD's HTTP routes: a draft naming a path with another method gets the
    # TDD's (`check_routes`).
    routes: list[str] = Field(default_factory=list)
    # With a Code column in some table, the TDD's lines that name error codes:
    # a cell that names none is looked up in them (`check_error_codes`).
    code_lines: list[str] = Field(default_factory=list)
    # The TDD's headings below its title, each with the names it holds: what a
    # markdown reply's "Based on" is read against (`based_on`).
    headings: dict[str, list[str]] = Field(default_factory=dict)
    # How each section's reply is asked for: a JSON object, or markdown that
    # code reads into the same fields (`agent.draft.markdown_reply`).
    draft_as: DraftAs = "json"

    def facts(self, section_id: str) -> SectionFacts:
        return SectionFacts(
            files=self.files.get(section_id, []),
            versions=self.versions,
            routes=self.routes,
            code_lines=self.code_lines,
            headings=self.headings,
        )


class SectionFacts(BaseModel):
    """What the TDD gives that one section's draft is completed or checked against, by code."""

    files: list[tuple[str, str]] = Field(default_factory=list)
    versions: dict[str, list[str]] = Field(default_factory=dict)
    routes: list[str] = Field(default_factory=list)
    code_lines: list[str] = Field(default_factory=list)
    headings: dict[str, list[str]] = Field(default_factory=dict)


def plan_messages(
    template: Template,
    tdd: Tdd,
    provider: Provider,
    *,
    max_tokens: int,
    schema_in_text: bool,
    sections: list[Section] | None = None,
    notes: str = "",
    pins: dict[str, str] | None = None,
    draft_as: DraftAs = "json",
) -> DraftPlan:
    """Build each section's messages, fitting the TDD into the context window.

    When the whole TDD fits, every section gets it in the same system message.
    When it does not (small embedded models), each section gets the TDD parts
    most relevant to it instead, and only the template text stays shared.
    """
    sections = sections if sections is not None else template.sections
    tdd_tokens = count_tokens(tdd.text)
    cites = bool(notes)
    users = {
        s.id: _user_message(template, s, tdd, provider, max_tokens, schema_in_text, cites, draft_as)
        for s in sections
    }
    # The file name, not the path: prompts (and cassettes) must not depend on
    # where the TDD sits on this machine.
    source = Path(tdd.path).name
    empty_system = system_message(template, source, tdd.title, "", notes)
    overhead = count_tokens(empty_system.content) + max(
        count_tokens(m.content) for m in users.values()
    )
    budget = int((provider.context_window - max_tokens - overhead) / _TOKENIZER_SLACK) - 64
    fits = tdd_tokens <= budget
    requests: dict[str, list[Message]] = {}
    shared = system_message(template, source, tdd.title, tdd.text, notes) if fits else None
    for s in sections:
        if shared is not None:
            system = shared
        else:
            query = f"{s.title} {s.guidance} " + " ".join(p.title for p in s.parts)
            system = system_message(template, source, tdd.title, excerpt(tdd, query, budget), notes)
        requests[s.id] = [system, users[s.id]]
    return DraftPlan(
        shared_prefix=fits,
        tdd_tokens=tdd_tokens,
        requests=requests,
        cites=cites,
        applies={s.id: found for s in sections if (found := applies(s, tdd))},
        files=_tree_files(sections, tdd),
        versions=_given_versions(sections, tdd, notes, pins or {}),
        routes=tdd_routes(tdd.text),
        code_lines=code_lines(tdd.text) if _has_column(sections, "code") else [],
        headings={h.title: tdd_names(h.text) for h in tdd.headings if h.level > 1},
        draft_as=draft_as,
    )


def _user_message(
    template: Template,
    section: Section,
    tdd: Tdd,
    provider: Provider,
    max_tokens: int,
    schema_in_text: bool,
    cites: bool,
    draft_as: DraftAs = "json",
) -> Message:
    """The section's own ask: its schema, the TDD names that fit it, its bounds."""
    query = f"{section.title} {section.guidance} " + " ".join(
        f"{p.title} {p.guidance}" for p in section.parts
    )
    names = names_for(tdd, query, NAMES_PER_SECTION)
    if draft_as == "markdown":
        return markdown_message(template, section, tdd.feature, cites=cites, names=names)
    schema = section_schema(section, cites)[1]
    return section_message(
        template,
        section,
        tdd.feature,
        schema,
        schema_in_text=schema_in_text,
        cites=cites,
        # The bounds the provider's grammar will enforce on this section.
        fitted=fitted_schema(provider, schema, max_tokens),
        names=names,
    )


def _has_column(sections: list[Section], key: str) -> bool:
    """Whether a table of `sections` has a column `key` (as `column_keys` spells it)."""
    return any(key in column_keys(p) for s in sections for p in s.parts if p.kind == "table")


def _given_versions(
    sections: list[Section], tdd: Tdd, notes: str, pins: dict[str, str]
) -> dict[str, list[str]]:
    """The versions the TDD, the notes and the codebase's `pins` give (`given_versions`),
    when a table has a Version column."""
    if not _has_column(sections, "version"):
        return {}
    pinned = " ".join(f"{name}=={version}" for name, version in pins.items())
    return given_versions(f"{tdd.text}\n{notes}\n{pinned}")


def _tree_files(sections: list[Section], tdd: Tdd) -> dict[str, list[tuple[str, str]]]:
    """The TDD's files (`tdd_files`) for each section with a file tree; none without them."""
    layout = tdd_files(tdd.text)
    trees = [s.id for s in sections if any(p.kind == "tree" for p in s.parts)]
    return {section_id: layout for section_id in trees} if layout else {}
