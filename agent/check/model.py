"""The values `tidsmith check` passes between its steps: a document's `Claim`s and the
`CodeIndex` of a codebase (with its `Loc`, `Definition`, `Route` and `Dependency`).

Plain data, no reading or parsing; imports nothing of agent or research.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

ClaimKind = Literal[
    "path", "symbol", "import", "package", "env", "config", "endpoint", "command", "flag"
]


class Claim(BaseModel):
    """One checkable statement, where the document makes it."""

    kind: ClaimKind
    value: str = Field(description="the path, dotted name, package, variable, route or command")
    doc: str = ""
    line: int = Field(description="1-based line in the document")
    section: str = Field(default="", description="the nearest level-1/2 heading above")
    new: bool = Field(default=False, description="the document says it creates this")
    version: str = Field(default="", description="packages: the specifier, like ==1.2 or >=2")
    params: list[str] | None = Field(default=None, description="symbols: parameter names named")
    method: str = Field(default="", description="endpoints: GET, POST, ...")
    command: str = Field(default="", description="flags: the subcommand they were given to")
    program: str = Field(default="", description="commands and flags: the program")
    in_file: str = Field(default="", description="symbols: the file a code block says it is in")
    ecosystem: str = Field(default="", description="packages: pypi or npm")
    root: str = Field(default="", description="tree paths: the tree's top folder, maybe the repo")


# String literals the index keeps: flags, dotted or path-like names, routes.
STRING_WORTH = re.compile(r"^(?:--?[a-z][\w-]*|\.?[A-Za-z_][\w.-]{1,80}|/[\w/{}:<>.-]*)$")
ROUTE_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


@dataclass(frozen=True)
class Loc:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Definition:
    """A class, function, method, variable or type, where it is defined."""

    name: str  # within its module: `Class.method`
    kind: str
    module: str
    loc: Loc
    params: list[str] | None = None
    open_params: bool = False  # takes **kwargs (or a JS rest/options object)


@dataclass
class Route:
    method: str
    path: str
    loc: Loc


@dataclass
class Dependency:
    name: str
    spec: str
    ecosystem: str
    loc: Loc


@dataclass
class CodeIndex:
    root: Path
    files: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)
    modules: dict[str, str] = field(default_factory=dict)  # dotted or path-like -> file
    defs: dict[str, list[Definition]] = field(default_factory=lambda: defaultdict(list))
    by_module: dict[str, dict[str, Definition]] = field(default_factory=lambda: defaultdict(dict))
    reexports: dict[str, dict[str, Loc]] = field(default_factory=lambda: defaultdict(dict))
    strings: dict[str, list[Loc]] = field(default_factory=lambda: defaultdict(list))
    attributes: dict[str, list[Loc]] = field(default_factory=lambda: defaultdict(list))
    routes: list[Route] = field(default_factory=list)
    commands: dict[str, Loc] = field(default_factory=dict)  # subcommand -> where
    flags: dict[str, dict[str, Loc]] = field(default_factory=lambda: defaultdict(dict))
    programs: dict[str, Loc] = field(default_factory=dict)
    deps: dict[str, list[Dependency]] = field(default_factory=lambda: defaultdict(list))
    locked: dict[str, tuple[str, Loc]] = field(default_factory=dict)
    usages: dict[str, list[Loc]] = field(default_factory=lambda: defaultdict(list))
    stems: dict[str, str] = field(default_factory=dict)  # file stem -> file (prompt ids, ...)
    unparsed: list[str] = field(default_factory=list)

    def add_definition(self, definition: Definition) -> None:
        """Index a definition by its module, its own name and (for `Class.member`) its full name."""
        name = definition.name
        self.by_module[definition.module].setdefault(name, definition)
        self.defs[name.split(".")[-1]].append(definition)
        if "." in name:
            self.defs[name].append(definition)


def norm_package(name: str) -> str:
    """PEP 503 names: `Foo_Bar.baz` and `foo-bar-baz` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()
