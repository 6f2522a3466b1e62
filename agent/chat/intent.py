"""Chat requests → actions: a deterministic pre-parse, one structured call, repair by code.

The seed's phrasings ("Please create a Technical Implementation Document (TID)
for Data Export based on 0xcc/tdds/002_FTDD|DataExport.md.", "Research first:
… then create a TID for …") are recognised by code, so they work on any model,
even a 135M one. Anything else goes to the model as one structured-output call
whose fields are then checked against what the user actually typed: a small
model that invents a path, a template or a research step is overruled.

Owns reading a request and finding TDD files and sections by name; imports the
draft stage and providers only, never the pipeline or the rest of `agent.chat`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from agent.core.records import CallRecord
from agent.core.templates import Section, Template
from agent.draft.prompting import fill, format_note, load_prompt
from agent.draft.sections import structured_call
from agent.providers.base import Message, Provider

PROMPT_ID = "chat_intent"

Action = Literal[
    "generate",
    "revise",
    "review",
    "save",
    "set_model",
    "set_template",
    "show_cost",
    "show",
    "clarify",
    "unknown",
]


class Intent(BaseModel):
    """What the user asked for, as the model (or the pre-parse) reads it."""

    action: Action = Field(
        description="generate: create a TID or Spec from a TDD; revise: rewrite one section; "
        "review: check the document; save: write it to disk; set_model / set_template: switch; "
        "show_cost: tokens and cost so far; show: print the document or a section; clarify: "
        "something needed is missing, ask `question`; unknown: not a tidsmith request"
    )
    template: Literal["tid", "spec"] | None = Field(
        default=None, description="tid for a Technical Implementation Document, spec for a Spec"
    )
    research: bool = Field(
        default=False, description="true only when the user asks to research or search first"
    )
    research_query: Annotated[str, Field(max_length=200)] = Field(
        default="", description="what to search for, when the user says"
    )
    tdd: Annotated[str, Field(max_length=200)] = Field(
        default="", description="the TDD file path, or the feature name the user gives"
    )
    section: Annotated[str, Field(max_length=80)] = Field(
        default="", description="section number, id or title (revise, show)"
    )
    instruction: Annotated[str, Field(max_length=600)] = Field(
        default="", description="what to change in the section (revise)"
    )
    value: Annotated[str, Field(max_length=200)] = Field(
        default="", description="model id (set_model) or output path (save)"
    )
    question: Annotated[str, Field(max_length=300)] = Field(
        default="", description="the one short question to ask (clarify)"
    )


# --- deterministic pre-parse --------------------------------------------------------

# A markdown path: quoted (may hold spaces) or a run of non-space characters.
# `|` is part of the team's file names (002_FTDD|Model_Management.md).
_OPEN = "\"'`\u201c\u2018"  # quotes, typographic ones too
_CLOSE = "\"'`\u201d\u2019"
_QUOTED_PATH = re.compile(rf"[{_OPEN}]([^{_CLOSE}\n]+?\.md)[{_CLOSE}]", re.IGNORECASE)
_BARE_PATH = re.compile(
    rf"(?<![\w/.])([^\s{_OPEN}{_CLOSE}()<>\[\]]+?\.md)(?=[\s.,;:!?)\]{_CLOSE}]|$)", re.IGNORECASE
)
_CREATE = re.compile(r"\b(create|generate|write|draft|make|produce|build|prepare)\b", re.IGNORECASE)
_SPEC = re.compile(r"\b(spec|specification)s?\b", re.IGNORECASE)
_TID = re.compile(r"\b(TID|technical implementation document|implementation document)s?\b", re.I)
_RESEARCH = re.compile(r"\b(research|/mcp|look\s+up|search)\b", re.IGNORECASE)
_RESEARCH_QUERY = re.compile(rf"\bsearch\s+[{_OPEN}]([^{_CLOSE}\n]{{1,200}})[{_CLOSE}]", re.I)
# "for Data Export based on", "for "Data Export" incorporating", "for Data Export."
_FEATURE = re.compile(
    rf"\bfor\s+(?:the\s+)?[{_OPEN}]?(?P<name>[^{_CLOSE}\n]+?)[{_CLOSE}]?"
    r"(?:\s+(?:feature|tdd))?"
    r"(?=\s+(?:based\s+on|from|using|incorporating|with|in|out\s+of)\b|\s*[.,;:!?\n]|\s*$)",
    re.IGNORECASE,
)
_REVISE = re.compile(
    r"^\s*(?:please\s+)?(?:revise|rewrite|redo|change|update|edit|improve)\s+"
    r"(?:the\s+)?(?:section\s+)?(?P<section>\d+|[a-z_]+\s+section|[a-z_]+)\b"
    r"(?:\s+section)?(?:\s*[:,\-\u2013]|\s+to\b|\s+so\s+(?:that|it)\b|\s+and\b)?"
    r"\s*(?P<instruction>.*)$",
    re.IGNORECASE | re.DOTALL,
)
# Placeholders the seed prompt leaves in brackets must not become feature names.
_PLACEHOLDER = re.compile(r"^\[.*\]$")


def find_path(text: str) -> str:
    """The first markdown path written in the request, without quotes or trailing dots."""
    for pattern in (_QUOTED_PATH, _BARE_PATH):
        match = pattern.search(text)
        if match:
            return match.group(1).strip()
    return ""


def find_feature(text: str) -> str:
    """The feature named after "for" ("a TID for Data Export based on …"), if any."""
    for match in _FEATURE.finditer(text):
        name = match.group("name").strip(" .")
        if not name or _PLACEHOLDER.match(name) or name.lower().endswith(".md"):
            continue
        # "for the TDD in 0xcc/…" names no feature.
        if name.lower() in {"tdd", "the tdd", "it", "this", "that", "me", "us"}:
            continue
        return name[:200]
    return ""


def wanted_template(text: str) -> Literal["tid", "spec"] | None:
    """tid or spec when the request names exactly one kind of document."""
    spec, tid = bool(_SPEC.search(text)), bool(_TID.search(text))
    if spec and not tid:
        return "spec"
    if tid and not spec:
        return "tid"
    return None


def preparse(text: str) -> Intent | None:
    """The intent of an obvious request, decided by code; None when the model must read it."""
    revise = _REVISE.match(text)
    if revise and revise.group("instruction").strip():
        section = re.sub(r"\s+section$", "", revise.group("section"), flags=re.IGNORECASE)
        return Intent(
            action="revise",
            section=section,
            instruction=revise.group("instruction").strip()[:600],
        )
    path = find_path(text)
    template = wanted_template(text)
    asks_create = bool(_CREATE.search(text))
    if asks_create and (template is not None or path):
        query = _RESEARCH_QUERY.search(text)
        return Intent(
            action="generate",
            template=template,
            research=bool(_RESEARCH.search(text)),
            research_query=query.group(1).strip() if query else "",
            tdd=path or find_feature(text),
        )
    return None


# --- the model call --------------------------------------------------------------------


class IntentContext(BaseModel):
    """What the model is told about the session, so it can name things that exist."""

    tdds: list[str] = Field(default_factory=list, max_length=40)
    loaded: str = ""
    template: str = "tid"
    sections: list[str] = Field(default_factory=list, max_length=20)


def _describe(context: IntentContext) -> str:
    lines = [
        "TDD files: " + (", ".join(context.tdds) if context.tdds else "none found"),
        f"Loaded TDD: {context.loaded or 'none'}",
        f"Current template: {context.template}",
    ]
    if context.sections:
        lines.append("Sections of the current document: " + "; ".join(context.sections))
    else:
        lines.append("No document has been generated yet.")
    return "\n".join(lines)


async def ask_model(
    provider: Provider, text: str, context: IntentContext, *, max_tokens: int = 400
) -> tuple[Intent, CallRecord]:
    """One structured call; an unusable reply reads as `unknown`, not as an error."""
    prompt = load_prompt(PROMPT_ID)
    schema = Intent.model_json_schema()
    user = fill(prompt.user, request=text.strip()[:4000], context=_describe(context))
    note = format_note(prompt, schema, provider.schema_in_text)
    messages = [
        Message(role="system", content=prompt.system.strip()),
        Message(role="user", content=f"{user.strip()}\n{note}"),
    ]
    # chat_intent has no retry text: one attempt, and an unusable reply reads as unknown.
    intent, calls, _ = await structured_call(
        provider,
        prompt,
        Intent,
        messages,
        label="intent",
        schema_name="intent",
        max_tokens=max_tokens,
        json_schema=schema,
        temperature=0.0,
    )
    return (Intent(action="unknown") if intent is None else intent), calls[-1]


def repair(intent: Intent, text: str) -> Intent:
    """Overrule fields the request's own words contradict (small models guess)."""
    update: dict[str, object] = {}
    path = find_path(text)
    if intent.action == "generate":
        # What the user wrote beats what the model read into it.
        update["tdd"] = path or _unless_invented(intent.tdd, text) or find_feature(text)
        update["template"] = wanted_template(text) or intent.template
        update["research"] = bool(_RESEARCH.search(text))
        if not update["research"]:
            update["research_query"] = ""
    elif intent.action == "set_template":
        update["template"] = wanted_template(text) or intent.template
    elif intent.action == "set_model" and intent.value.lower() not in text.lower():
        update["value"] = ""  # an id the user never typed: show the current one instead
    elif intent.action == "save":
        update["value"] = path or (intent.value if intent.value in text else "")
    elif (
        intent.action in {"revise", "show"}
        and intent.section
        and _norm(intent.section) not in _norm(text)
    ):
        # A section the user never mentioned: ask rather than rewrite the wrong one.
        number = re.search(r"\bsection\s+(\d+)\b", text, re.IGNORECASE)
        update["section"] = number.group(1) if number else ""
    return intent.model_copy(update=update)


def _unless_invented(value: str, text: str) -> str:
    """The model's TDD reference only when its words appear in the request."""
    words = [w for w in re.split(r"[\W_]+", value.lower()) if len(w) > 2]
    said = text.lower()
    return value if words and all(w in said for w in words) else ""


async def interpret(
    text: str, provider: Provider | None, context: IntentContext
) -> tuple[Intent, CallRecord | None]:
    """The request's intent: pre-parsed when obvious, else one model call, repaired."""
    quick = preparse(text)
    if quick is not None:
        return quick, None
    if provider is None:
        return Intent(action="unknown"), None
    intent, record = await ask_model(provider, text, context)
    return repair(intent, text), record


# --- resolving names to files and sections -------------------------------------------------


class TddMatch(BaseModel):
    """How a TDD reference resolved: one path, several candidates, or nothing."""

    path: Path | None = None
    candidates: list[Path] = Field(default_factory=list)
    message: str = ""


def tdd_files(cwd: Path, loaded: Path | None = None) -> list[Path]:
    """TDD markdown files under `0xcc/tdds/` in `cwd`, plus the loaded TDD's folder."""
    folders = [cwd / "0xcc" / "tdds"]
    if loaded is not None:
        folders.append(loaded.parent)
    by_real_path: dict[Path, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.glob("*.md")):
                by_real_path.setdefault(path.resolve(), path)
    if loaded is not None and loaded.is_file():
        by_real_path.setdefault(loaded.resolve(), loaded)
    return list(by_real_path.values())


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def _feature_words(path: Path) -> list[str]:
    """The words of the feature part of `002_FTDD|Data_Export.md`: [data, export]."""
    stem = re.sub(r"^\d+[_\-\s]*", "", path.stem)
    stem = re.sub(r"^[FP]?TDD(?:[|_\-\s]+|$)", "", stem, flags=re.IGNORECASE)
    return [w for w in re.split(r"[\W_]+", stem.lower()) if w]


_NOISE = {"the", "a", "an", "feature", "tdd", "tid", "spec", "document", "doc", "for", "please"}


def resolve_tdd(ref: str, cwd: Path, loaded: Path | None = None) -> TddMatch:
    """A path or feature name → the TDD file; ambiguity and absence are answers, not guesses."""
    ref = ref.strip()
    if not ref:
        if loaded is not None:
            return TddMatch(path=loaded)
        return TddMatch(message="which TDD? name a file under 0xcc/tdds/ or use /load PATH")
    files = tdd_files(cwd, loaded)
    if ref.lower().endswith(".md"):
        given = Path(ref).expanduser()
        if (cwd / given).is_file():  # an absolute `given` replaces cwd
            return TddMatch(path=cwd / given)
        # A mistyped name ("DataExport" for "Data_Export"): offer, never pick.
        near = [p for p in files if _norm(p.stem) == _norm(given.stem)]
        if near:
            return TddMatch(
                candidates=near, message=f"{ref} does not exist; did you mean {_names(near)}?"
            )
        words = [w for w in _feature_words(given) if w not in _NOISE]
        near = [p for p in files if words and all(w in _feature_words(p) for w in words)]
        hint = f"; did you mean {_names(near)}?" if near else ""
        return TddMatch(candidates=near, message=f"{ref}: no such file{hint}")
    words = [w for w in re.split(r"[\W_]+", ref.lower()) if w and w not in _NOISE]
    number = re.fullmatch(r"\d+", ref.strip())
    matches: list[Path] = []
    for path in files:
        feature = _feature_words(path)
        by_number = number is not None and path.stem.startswith(ref.strip().zfill(3))
        by_name = bool(words) and (
            all(w in feature for w in words) or _norm(" ".join(words)) in "".join(feature)
        )
        if by_number or by_name:
            matches.append(path)
    if len(matches) == 1:
        return TddMatch(path=matches[0])
    if len(matches) > 1:
        return TddMatch(
            candidates=matches,
            message=f"{len(matches)} TDDs match {ref!r}: {_names(matches)}. Which one?",
        )
    where = "under 0xcc/tdds/" if files else "(no 0xcc/tdds/ folder here)"
    return TddMatch(message=f"no TDD matches {ref!r} {where}; give its path or use /load PATH")


_ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4}


def pick_candidate(answer: str, candidates: list[Path]) -> Path | None:
    """The candidate an answer to "which one?" names: file name, number, ordinal or a word."""
    text = answer.lower()
    named = [c for c in candidates if c.stem.lower() in text]
    if len(named) == 1:
        return named[0]
    numbers = {int(n) for n in re.findall(r"\b\d+\b", text)}
    by_number = [c for c in candidates if (n := re.match(r"\d+", c.name)) and int(n[0]) in numbers]
    if len(by_number) == 1:
        return by_number[0]
    words = set(re.split(r"[\W_]+", text))
    if "last" in words:
        return candidates[-1]
    for word, index in _ORDINALS.items():
        if word in words and index < len(candidates):
            return candidates[index]
    # A word only one candidate's name has ("scheduling" of Data_Export_Scheduling).
    by_distinct_word = [
        c for c in candidates if words & (set(_feature_words(c)) - _shared(candidates))
    ]
    return by_distinct_word[0] if len(by_distinct_word) == 1 else None


def _shared(candidates: list[Path]) -> set[str]:
    sets = [set(_feature_words(c)) for c in candidates]
    return set.intersection(*sets) if sets else set()


def _names(paths: list[Path]) -> str:
    return " or ".join(p.name for p in paths)


def resolve_section(template: Template, ref: str) -> Section | None:
    """A section by printed number, id or (unique prefix of its) title."""
    ref = ref.strip().strip(".").lower()
    if not ref:
        return None
    for s in template.sections:
        if ref.isdigit() and template.number(s.id) == int(ref):
            return s
        if ref in {s.id, s.title.lower()}:
            return s
    key = _norm(ref)
    hits = [s for s in template.sections if key and _norm(s.title).startswith(key)]
    if not hits:
        hits = [s for s in template.sections if key and key in _norm(s.title + s.id)]
    return hits[0] if len(hits) == 1 else None
