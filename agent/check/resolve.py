"""Each claim against the codebase index: found, new, drifted or missing.

- found: the codebase has it as the document says (`where` is `file:line`).
- new: not in the codebase, and the document says it creates it (a `(new)`
  note, `# new` in a file tree), the TDD names it (`--tdd`: designed, not
  built yet), or `--expect planned` says the whole document comes before the
  code.
- drifted: the codebase has it, but with another version, signature, method
  or place; `where` says where it is and `detail` what differs.
- missing: nowhere. Close names are listed as suggestions, never as found.

Reads only the check model (`agent.check.model`); imports nothing of agent outside agent.check.
"""

from __future__ import annotations

import difflib
import re
import sys
from typing import Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from agent.check.model import Claim, CodeIndex, Definition, Loc, norm_package

Verdict = Literal["found", "new", "drifted", "missing"]


class Finding(BaseModel):
    claim: Claim
    verdict: Verdict
    where: str = Field(default="", description="file:line in the codebase, when found or drifted")
    detail: str = ""
    suggestions: list[str] = Field(default_factory=list)


def resolve(
    claim: Claim,
    index: CodeIndex,
    *,
    planned: bool = False,
    tdd_names: frozenset[str] = frozenset(),
) -> Finding:
    """The verdict for one claim."""
    finding = _RESOLVERS[claim.kind](claim, index)
    if finding.verdict == "missing":
        if claim.new:
            return finding.model_copy(
                update={"verdict": "new", "detail": "the document marks it new"}
            )
        if _named_by(claim, tdd_names):
            return finding.model_copy(update={"verdict": "new", "detail": "named by the TDD"})
        if planned:
            return finding.model_copy(update={"verdict": "new", "detail": "--expect planned"})
    return finding


def _named_by(claim: Claim, names: frozenset[str]) -> bool:
    if not names:
        return False
    value = claim.value
    return value in names or value.split(".")[-1] in names or value.split("/")[-1] in names


def _found(claim: Claim, loc: Loc | str, detail: str = "") -> Finding:
    return Finding(claim=claim, verdict="found", where=str(loc), detail=detail)


def _drifted(claim: Claim, loc: Loc | str, detail: str) -> Finding:
    return Finding(claim=claim, verdict="drifted", where=str(loc), detail=detail)


def _missing(claim: Claim, detail: str, pool: list[str] | None = None, key: str = "") -> Finding:
    close = difflib.get_close_matches(key or claim.value, pool or [], n=3, cutoff=0.75)
    return Finding(claim=claim, verdict="missing", detail=detail, suggestions=close)


# --- paths --------------------------------------------------------------------------

_COMMON_NAMES = {"__init__.py", "index.ts", "index.js", "README.md", "main.py", "utils.py"}


def _path(claim: Claim, index: CodeIndex) -> Finding:
    path = claim.value
    if path in index.files or path in index.dirs:
        return _found(claim, Loc(path, 1))
    if claim.root and path.startswith(claim.root + "/"):
        # A tree drawn from the repository's own folder (`shop/` over `shop/x.py`).
        inner = path[len(claim.root) + 1 :]
        if inner in index.files or inner in index.dirs:
            return _found(claim, Loc(inner, 1), "below the tree's top folder")
        path = inner
    name = path.split("/")[-1]
    if "/" in path and name not in _COMMON_NAMES:
        elsewhere = sorted(
            f for f in index.files | index.dirs if f.split("/")[-1] == name and f != path
        )
        # Suffix matches first: `agent/cli/main.py` claimed in a doc about `src/agent/cli.py`.
        tail = [f for f in elsewhere if f.endswith("/" + path)]
        if tail:
            return _found(claim, Loc(tail[0], 1), "relative to a subfolder")
        if elsewhere:
            places = ", ".join(elsewhere[:3])
            return _drifted(claim, Loc(elsewhere[0], 1), f"not at {path}; found at {places}")
    elif "/" not in path:
        matches = sorted(f for f in index.files | index.dirs if f.split("/")[-1] == path)
        if matches:
            return _found(claim, Loc(matches[0], 1))
    stem = [f for f in index.files if f.rsplit(".", 1)[0] == path]
    if stem:
        return _found(claim, Loc(sorted(stem)[0], 1), "without its extension")
    used = _string_use(index, path)
    if used is not None:
        return _found(claim, used, "a file name the code reads or writes")
    return _missing(claim, "no such file or folder", sorted(index.files | index.dirs))


def _string_use(index: CodeIndex, value: str) -> Loc | None:
    """Where the code uses `value` as a string (or a string ending in it, like `.run.json`)."""
    if index.strings.get(value):
        return index.strings[value][0]
    if len(value) >= 6:
        for text, locs in index.strings.items():
            if len(text) >= 4 and (
                text.endswith(value) or (value.endswith(text) and "." in text[1:])
            ):
                return locs[0]
    return None


# --- symbols ------------------------------------------------------------------------


def _signature_drift(claim: Claim, definition: Definition) -> str:
    if claim.params is None or definition.params is None or definition.open_params:
        return ""
    unknown = [p for p in claim.params if p not in definition.params]
    if not unknown:
        return ""
    have = ", ".join(definition.params)
    return f"takes ({have}), not {', '.join(unknown)}"


def _definition_verdict(claim: Claim, definition: Definition) -> Finding:
    drift = _signature_drift(claim, definition)
    if drift:
        return _drifted(claim, definition.loc, f"{definition.name} {drift}")
    return _found(claim, definition.loc, definition.kind)


def _symbol(claim: Claim, index: CodeIndex) -> Finding:
    value = claim.value
    parts = value.split(".")
    # A dotted name: the longest prefix that is a module, the rest inside it.
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if module not in index.modules:
            continue
        rest = ".".join(parts[cut:])
        if not rest:
            return _found(claim, Loc(index.modules[module], 1), "module")
        found = _in_module(claim, index, module, rest)
        if found is not None:
            return found
        return _elsewhere(claim, index, rest, f"not in {module}")
    if claim.in_file:
        module_defs = [
            d for defs in index.defs.values() for d in defs if d.loc.file == claim.in_file
        ]
        for d in module_defs:
            if d.name == value:
                return _definition_verdict(claim, d)
        if claim.in_file in index.files:
            return _elsewhere(claim, index, value, f"not in {claim.in_file}")
    return _elsewhere(claim, index, value, "")


def _in_module(claim: Claim, index: CodeIndex, module: str, name: str) -> Finding | None:
    definition = index.by_module.get(module, {}).get(name)
    if definition is not None:
        return _definition_verdict(claim, definition)
    reexport = index.reexports.get(module, {}).get(name)
    if reexport is not None:
        source = index.reexports[module].get(f"->{name}")
        target = index.by_module.get(source.file, {}).get(name) if source else None
        if target is not None:
            return _definition_verdict(claim, target)
        return _found(claim, reexport, "imported there")
    exported = [loc for loc in index.strings.get(name, []) if loc.file == index.modules.get(module)]
    if exported and "." not in name:
        return _found(claim, exported[0], "exported by name (lazy import)")
    return None


def _elsewhere(claim: Claim, index: CodeIndex, name: str, context: str) -> Finding:
    """A name looked up across the codebase; `context` says where the document put it."""
    candidates = index.defs.get(name) or []
    if not candidates and "." in name:
        candidates = index.defs.get(name.split(".")[-1]) or []
        candidates = [d for d in candidates if d.name.endswith(name.split(".", 1)[-1])]
    if candidates:
        best = min(candidates, key=lambda d: (d.kind in ("method", "attribute"), d.loc.file))
        if context:
            where = f"{best.module}.{best.name}" if best.module else best.name
            return _drifted(claim, best.loc, f"{context}; defined as {where}")
        return _definition_verdict(claim, best)
    if not claim.in_file and claim.params is not None and index.usages.get(name):
        # A third-party API the code calls: its signature is not ours to check.
        return _found(claim, index.usages[name][0], "called by the code (not defined here)")
    if not claim.in_file and claim.params is None:
        # Not defined here, but named: an id in a string or data file, a third-party
        # API the code calls, a prompt or template file's stem.
        if index.strings.get(name):
            return _found(claim, index.strings[name][0], "a name the code uses as a string")
        if index.usages.get(name):
            return _found(claim, index.usages[name][0], "used by the code")
        if name in index.stems:
            return _found(claim, Loc(index.stems[name], 1), "a file of that name")
        parts = name.split(".")
        if len(parts) > 1 and all(index.strings.get(p) or index.attributes.get(p) for p in parts):
            loc = (index.strings.get(parts[-1]) or index.attributes[parts[-1]])[0]
            return _found(claim, loc, "keys the code uses")
    pool = sorted(index.defs)
    key = name.split(".")[-1]
    detail = f"{context}; defined nowhere" if context else "defined nowhere in the codebase"
    return _missing(claim, detail, pool, key)


# --- imports ------------------------------------------------------------------------


def _import(claim: Claim, index: CodeIndex) -> Finding:
    value = claim.value
    head = value.split("/")[0] if claim.ecosystem == "npm" else value.split(".")[0]
    if claim.ecosystem == "npm":
        name = "/".join(value.split("/")[:2]) if value.startswith("@") else head
        deps = index.deps.get(name.lower())
        if deps:
            return _found(claim, deps[0].loc, "declared dependency")
        return _missing(claim, "not a declared dependency", sorted(index.deps))
    if any(m == head or m.startswith(head + ".") for m in index.modules):
        return _symbol(claim.model_copy(update={"kind": "symbol"}), index).model_copy(
            update={"claim": claim}
        )
    if head in sys.stdlib_module_names:
        return _found(claim, "stdlib", "standard library")
    deps = index.deps.get(norm_package(head))
    if deps:
        return _found(claim, deps[0].loc, "declared dependency")
    return _missing(claim, "neither in the codebase nor a declared dependency", sorted(index.deps))


# --- packages -----------------------------------------------------------------------


def _package(claim: Claim, index: CodeIndex) -> Finding:
    name = norm_package(claim.value) if claim.ecosystem != "npm" else claim.value.lower()
    deps = index.deps.get(name)
    if not deps:
        return _missing(claim, "not declared in any manifest", sorted(index.deps), name)
    declared = deps[0]
    locked = index.locked.get(name)
    claimed = _npm_spec(claim.version) if claim.ecosystem == "npm" else claim.version
    if locked is not None:
        version, loc = locked
        ok = _satisfies(version, claimed)
        if ok is True:
            return _found(claim, loc, f"locked at {version}")
        if ok is False:
            return _drifted(claim, loc, f"locked at {version}, not {claim.version}")
    spec = declared.spec
    if _same_spec(spec, claimed):
        return _found(claim, declared.loc, f"declared {spec}")
    pinned = spec[2:] if spec.startswith("==") and "," not in spec else ""
    if pinned and _satisfies(pinned, claimed) is True:
        return _found(claim, declared.loc, f"declared {spec}")
    return _drifted(
        claim, declared.loc, f"declared as {spec or 'any version'}, not {claim.version}"
    )


def _npm_spec(spec: str) -> str:
    """`^1.2.3` -> `>=1.2.3,<2`; `~1.2.3` -> `>=1.2.3,<1.3`; `1.2.3` -> `==1.2.3`."""
    if spec.startswith("^"):
        base = spec[1:]
        major = base.split(".")[0]
        return f">={base},<{int(major) + 1}" if major.isdigit() else spec
    if spec.startswith("~"):
        base = spec[1:]
        bits = base.split(".")
        return (
            f">={base},<{bits[0]}.{int(bits[1]) + 1}"
            if len(bits) > 1 and bits[1].isdigit()
            else spec
        )
    if spec[:1].isdigit():
        return f"=={spec}"
    return spec


def _satisfies(version: str, spec: str) -> bool | None:
    try:
        return Version(version) in SpecifierSet(spec)
    except (InvalidVersion, InvalidSpecifier):
        return None


def _same_spec(declared: str, claimed: str) -> bool:
    try:
        return set(SpecifierSet(claimed)) <= set(SpecifierSet(declared))
    except InvalidSpecifier:
        return declared.replace(" ", "") == claimed.replace(" ", "")


# --- strings: env variables, config keys --------------------------------------------


def _env(claim: Claim, index: CodeIndex) -> Finding:
    locs = index.strings.get(claim.value) or index.usages.get(claim.value)
    if locs:
        return _found(claim, locs[0], "read by name")
    consts = [d for d in index.defs.get(claim.value, []) if d.kind == "variable"]
    if consts:
        return _found(claim, consts[0].loc, "a constant")
    pool = [s for s in index.strings if s.isupper()]
    return _missing(claim, "no code reads it", pool)


def _config(claim: Claim, index: CodeIndex) -> Finding:
    leaf = claim.value.split(".")[-1]
    variants = {leaf, leaf.replace("-", "_")}
    for name in variants:
        if index.strings.get(name):
            return _found(claim, index.strings[name][0], "key read by name")
        if index.attributes.get(name):
            return _found(claim, index.attributes[name][0], "a settings field")
    return _missing(claim, "no code reads this key", sorted(index.attributes), leaf)


# --- endpoints ----------------------------------------------------------------------


def _route_shape(path: str) -> str:
    """`/items/{id}`, `/items/:id` and `/items/<int:id>` are one route."""
    shape = re.sub(r"\{[^}]*\}|:[A-Za-z_]\w*|<[^>]*>", "{}", path.split("?")[0])
    return shape.rstrip("/") or "/"


def _endpoint(claim: Claim, index: CodeIndex) -> Finding:
    shape = _route_shape(claim.value)
    same = [r for r in index.routes if _route_shape(r.path) == shape]
    for route in same:
        if route.method == claim.method:
            return _found(claim, route.loc)
    if same:
        methods = ", ".join(sorted({r.method for r in same}))
        return _drifted(claim, same[0].loc, f"served as {methods}, not {claim.method}")
    pool = sorted({f"{r.method} {r.path}" for r in index.routes})
    return _missing(claim, "no route serves it", pool, f"{claim.method} {claim.value}")


# --- CLI ----------------------------------------------------------------------------


def _command(claim: Claim, index: CodeIndex) -> Finding:
    if claim.program not in index.programs:
        return _missing(claim, f"the codebase declares no program {claim.program}")
    if not claim.command:
        return _found(claim, index.programs[claim.program], "program")
    loc = index.commands.get(claim.command)
    if loc is not None:
        return _found(claim, loc)
    return _missing(claim, f"no subcommand {claim.command}", sorted(index.commands), claim.command)


def _flag(claim: Claim, index: CodeIndex) -> Finding:
    owners = index.flags.get(claim.value, {})
    if claim.value == "--help" and (claim.program in index.programs or not claim.program):
        return _found(claim, "argparse", "every command has --help")
    if not owners:
        pool = sorted(index.flags)
        return _missing(claim, "no command takes this flag", pool)
    if not claim.command or claim.command in owners or "" in owners:
        loc = owners.get(claim.command) or next(iter(owners.values()))
        return _found(claim, loc)
    others = ", ".join(sorted(owners))
    return _drifted(
        claim,
        next(iter(owners.values())),
        f"{claim.program} {claim.command} has no {claim.value}; {others} do",
    )


_RESOLVERS = {
    "path": _path,
    "symbol": _symbol,
    "import": _import,
    "package": _package,
    "env": _env,
    "config": _config,
    "endpoint": _endpoint,
    "command": _command,
    "flag": _flag,
}
