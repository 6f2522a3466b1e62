"""What a codebase holds, read with real parsers.

Python files with `ast`; TypeScript and JavaScript with tree-sitter (the
TypeScript and TSX grammars of `tree-sitter-typescript`, compiled into its
wheel); manifests and lock files (pyproject.toml, uv.lock, requirements*.txt,
package.json, package-lock.json) with `tomllib` and `json`. Nothing in the
codebase is imported or run.
"""

from __future__ import annotations

import ast
import json
import os
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.check.claims import py_params

# Folders that hold no source of the project itself.
SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", "env", "node_modules", "__pycache__",
        ".mypy_cache", ".ruff_cache", ".pytest_cache", ".tox", ".nox", "dist", "build",
        ".tidsmith", ".next", "coverage", "site-packages",
    }
)  # fmt: skip
MAX_SOURCE_BYTES = 1_000_000
_TS_SUFFIXES = {".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts"}
_ROUTE_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}
_STRING_WORTH = re.compile(r"^(?:--?[a-z][\w-]*|\.?[A-Za-z_][\w.-]{1,80}|/[\w/{}:<>.-]*)$")


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


def norm_package(name: str) -> str:
    """PEP 503 names: `Foo_Bar.baz` and `foo-bar-baz` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def build_index(root: Path) -> CodeIndex:
    """Walk `root` and index every source file and manifest in it."""
    index = CodeIndex(root=root)
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")
        )
        rel_folder = Path(folder).relative_to(root).as_posix()
        if rel_folder != ".":
            index.dirs.add(rel_folder)
        for name in sorted(filenames):
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            index.files.add(rel)
            index.stems.setdefault(name.split(".")[0], rel)
            path = Path(folder) / name
            try:
                if path.stat().st_size > MAX_SOURCE_BYTES:
                    continue
            except OSError:
                continue
            _index_file(index, path, rel)
    return index


def _index_file(index: CodeIndex, path: Path, rel: str) -> None:
    name = path.name
    try:
        if path.suffix == ".py":
            _index_python(index, path.read_text(encoding="utf-8"), rel)
        elif path.suffix in _TS_SUFFIXES and not name.endswith(".d.ts"):
            _index_ts(index, path.read_bytes(), rel)
        elif name == "pyproject.toml":
            _index_pyproject(index, path.read_text(encoding="utf-8"), rel)
        elif name == "uv.lock" or name == "poetry.lock":
            _index_uv_lock(index, path.read_text(encoding="utf-8"), rel)
        elif re.match(r"^requirements.*\.txt$", name):
            _index_requirements(index, path.read_text(encoding="utf-8"), rel)
        elif name == "package.json":
            _index_package_json(index, path.read_text(encoding="utf-8"), rel)
        elif name == "package-lock.json":
            _index_package_lock(index, path.read_text(encoding="utf-8"), rel)
        elif path.suffix in (".yaml", ".yml") and path.stat().st_size < 200_000:
            _index_yaml(index, path.read_text(encoding="utf-8"), rel)
        elif path.suffix == ".sh" or (not path.suffix and _is_shell(path)):
            _index_shell(index, path.read_text(encoding="utf-8"), rel)
    except (OSError, UnicodeDecodeError, ValueError, SyntaxError, RecursionError):
        index.unparsed.append(rel)


def _line_containing(text: str, needle: str, default: int = 1) -> int:
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else default


def _index_yaml(index: CodeIndex, text: str, rel: str) -> None:
    """Keys and values of YAML data files (prompt and template ids), with their lines."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        index.unparsed.append(rel)
        return
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if isinstance(node.value, str) and _STRING_WORTH.match(node.value):
                index.strings[node.value].append(Loc(rel, node.start_mark.line + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend([key, value])


def _is_shell(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(40)
    except OSError:
        return False
    return head.startswith(b"#!") and (b"sh" in head.split(b"\n")[0])


def _index_shell(index: CodeIndex, text: str, rel: str) -> None:
    """Environment variables a shell script reads (`$NAME`, `${NAME:-x}`)."""
    for n, line in enumerate(text.splitlines(), start=1):
        for name in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", line):
            index.strings[name].append(Loc(rel, n))


# --- Python -------------------------------------------------------------------------


def python_module(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    if parts[0] == "src" and len(parts) > 1:
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _index_python(index: CodeIndex, text: str, rel: str) -> None:
    tree = ast.parse(text)
    module = python_module(rel)
    if module:
        index.modules[module] = rel

    def add(name: str, kind: str, node: ast.AST, args: ast.arguments | None = None) -> None:
        loc = Loc(rel, getattr(node, "lineno", 1))
        definition = Definition(
            name=name,
            kind=kind,
            module=module,
            loc=loc,
            params=py_params(args) if args is not None else None,
            open_params=args is not None and args.kwarg is not None,
        )
        index.by_module[module].setdefault(name, definition)
        index.defs[name.split(".")[-1]].append(definition)
        if "." in name:
            index.defs[name].append(definition)

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            add(node.name, "function", node, node.args)
        elif isinstance(node, ast.ClassDef):
            add(node.name, "class", node)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    add(f"{node.name}.{item.name}", "method", item, item.args)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    add(f"{node.name}.{item.target.id}", "attribute", item)
                    index.attributes[item.target.id].append(Loc(rel, item.lineno))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    add(target.id, "variable", node)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            source = _absolute(module, rel, node)
            for alias in node.names:
                index.reexports[module][alias.asname or alias.name] = Loc(rel, node.lineno)
                index.reexports[module].setdefault(
                    f"->{alias.asname or alias.name}", Loc(source, 0)
                )
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _STRING_WORTH.match(node.value):
                index.strings[node.value].append(Loc(rel, node.lineno))
        elif isinstance(node, ast.Attribute):
            chain = _chain(node)
            if chain:
                parts = chain.split(".")
                for k in range(1, len(parts) + 1):
                    index.usages[".".join(parts[-k:])].append(Loc(rel, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                index.usages[alias.name].append(Loc(rel, node.lineno))
                index.usages[f"{node.module}.{alias.name}"].append(Loc(rel, node.lineno))
        elif isinstance(node, ast.Call):
            _python_call(index, node, rel)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                _python_route(index, deco, rel)
    _python_argparse(index, tree, rel)


def _chain(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _chain(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _absolute(module: str, rel: str, node: ast.ImportFrom) -> str:
    """The dotted module an ImportFrom names, relative imports resolved (stored in Loc.file)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if rel.endswith("__init__.py") else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


def _python_route(index: CodeIndex, deco: ast.expr, rel: str) -> None:
    """`@app.get("/x")`, `@router.post(...)`, `@app.route("/x", methods=[...])`."""
    if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)):
        return
    verb = deco.func.attr.lower()
    if not deco.args or not isinstance(deco.args[0], ast.Constant):
        return
    path = deco.args[0].value
    if not isinstance(path, str) or not path.startswith("/"):
        return
    if verb in _ROUTE_METHODS:
        index.routes.append(Route(verb.upper(), path, Loc(rel, deco.lineno)))
    elif verb in ("route", "api_route"):
        methods = ["GET"]
        for kw in deco.keywords:
            if kw.arg == "methods" and isinstance(kw.value, ast.List | ast.Tuple):
                methods = [
                    str(e.value).upper() for e in kw.value.elts if isinstance(e, ast.Constant)
                ]
        for method in methods:
            index.routes.append(Route(method, path, Loc(rel, deco.lineno)))


def _python_call(index: CodeIndex, node: ast.Call, rel: str) -> None:
    """`add_api_route("/x", ..., methods=[...])` and `os.environ`-style reads are strings."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "add_api_route" and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            for kw in node.keywords:
                if kw.arg == "methods" and isinstance(kw.value, ast.List | ast.Tuple):
                    for e in kw.value.elts:
                        if isinstance(e, ast.Constant):
                            index.routes.append(
                                Route(str(e.value).upper(), first.value, Loc(rel, node.lineno))
                            )


def _python_argparse(index: CodeIndex, tree: ast.Module, rel: str) -> None:
    """Subcommands (`add_parser("x")`) and the flags each one takes.

    Follows what argparse code does in practice: a subparser held in a
    variable, argument groups of it, loops over a tuple of subparsers, and
    helper functions that add flags to the parser they are given.
    """
    helper_flags: dict[str, list[tuple[str, Loc]]] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.args.args:
            param = fn.args.args[0].arg
            found = _flags_in(fn.body, {param: ""}, rel, index, record=False)
            if found.get(""):
                helper_flags[fn.name] = found[""]
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.Module):
            continue
        body = fn.body
        names: dict[str, str] = {}
        for stmt in ast.walk(ast.Module(body=body, type_ignores=[])):
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
                if isinstance(target, ast.Name) and isinstance(value, ast.Call):
                    func = value.func
                    if (
                        isinstance(func, ast.Attribute)
                        and func.attr == "add_parser"
                        and value.args
                        and isinstance(value.args[0], ast.Constant)
                    ):
                        command = str(value.args[0].value)
                        names[target.id] = command
                        index.commands.setdefault(command, Loc(rel, stmt.lineno))
        if not names:
            continue
        found = _flags_in(body, names, rel, index, record=True)
        for stmt in ast.walk(ast.Module(body=body, type_ignores=[])):
            if (
                isinstance(stmt, ast.Call)
                and isinstance(stmt.func, ast.Name)
                and stmt.func.id in helper_flags
                and stmt.args
                and isinstance(stmt.args[0], ast.Name)
                and stmt.args[0].id in names
            ):
                command = names[stmt.args[0].id]
                for flag, loc in helper_flags[stmt.func.id]:
                    index.flags[flag].setdefault(command, loc)
        del found


def _flags_in(
    body: list[ast.stmt], names: dict[str, str], rel: str, index: CodeIndex, *, record: bool
) -> dict[str, list[tuple[str, Loc]]]:
    """Flags added to the parsers in `names` (variable -> command), groups and loops included."""
    names = dict(names)
    found: dict[str, list[tuple[str, Loc]]] = defaultdict(list)
    module = ast.Module(body=body, type_ignores=[])
    for node in ast.walk(module):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and value.func.attr in ("add_argument_group", "add_mutually_exclusive_group")
                and isinstance(value.func.value, ast.Name)
                and value.func.value.id in names
            ):
                names[target.id] = names[value.func.value.id]
        elif (
            isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, ast.Tuple | ast.List)
        ):
            members = [e.id for e in node.iter.elts if isinstance(e, ast.Name)]
            if members and all(m in names for m in members):
                for stmt in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                    for flag, loc in _add_argument(stmt, node.target.id, rel):
                        for m in members:
                            found[names[m]].append((flag, loc))
    for node in ast.walk(module):
        for var, command in list(names.items()):
            for flag, loc in _add_argument(node, var, rel):
                found[command].append((flag, loc))
    if record:
        for command, flags in found.items():
            for flag, loc in flags:
                index.flags[flag].setdefault(command, loc)
    return found


def _add_argument(node: ast.AST, var: str, rel: str) -> list[tuple[str, Loc]]:
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == var
    ):
        return []
    out: list[tuple[str, Loc]] = []
    for arg in node.args:
        if (
            isinstance(arg, ast.Constant)
            and isinstance(arg.value, str)
            and arg.value.startswith("--")
        ):
            out.append((arg.value, Loc(rel, node.lineno)))
            if _is_boolean_optional(node):
                out.append(("--no-" + arg.value[2:], Loc(rel, node.lineno)))
    return out


def _is_boolean_optional(node: ast.Call) -> bool:
    return any(
        kw.arg == "action"
        and isinstance(kw.value, ast.Attribute)
        and kw.value.attr == "BooleanOptionalAction"
        for kw in node.keywords
    )


# --- TypeScript / JavaScript (tree-sitter) ------------------------------------------


def _ts_parser(tsx: bool) -> Any:
    import tree_sitter_typescript as grammars
    from tree_sitter import Language, Parser

    language = grammars.language_tsx() if tsx else grammars.language_typescript()
    return Parser(Language(language))


_PARSERS: dict[bool, Any] = {}


def _index_ts(index: CodeIndex, source: bytes, rel: str) -> None:
    tsx = rel.endswith((".tsx", ".jsx"))
    if tsx not in _PARSERS:
        _PARSERS[tsx] = _ts_parser(tsx)
    tree = _PARSERS[tsx].parse(source)
    module = re.sub(r"\.(?:[cm]?[jt]sx?)$", "", rel)
    index.modules[module] = rel
    if tree.root_node.has_error:
        index.unparsed.append(rel)

    def text(node: Any) -> str:
        return source[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def loc(node: Any) -> Loc:
        return Loc(rel, node.start_point[0] + 1)

    def params(node: Any) -> tuple[list[str] | None, bool]:
        plist = node.child_by_field_name("parameters")
        if plist is None:
            return None, False
        names: list[str] = []
        rest = False
        for p in plist.named_children:
            pattern = p.child_by_field_name("pattern") or p
            if pattern.type == "identifier":
                names.append(text(pattern))
            elif pattern.type == "rest_pattern":
                rest = True
            else:
                rest = True  # a destructured options object: names are not positional
        return names, rest

    def add(name: str, kind: str, node: Any, fn: Any = None) -> None:
        plist, rest = params(fn) if fn is not None else (None, False)
        definition = Definition(name, kind, module, loc(node), plist, rest)
        index.by_module[module].setdefault(name, definition)
        index.defs[name.split(".")[-1]].append(definition)
        if "." in name:
            index.defs[name].append(definition)

    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        kind = node.type
        name_node = node.child_by_field_name("name")
        if kind in ("class_declaration", "abstract_class_declaration", "class") and name_node:
            cls = text(name_node)
            add(cls, "class", node)
            body = node.child_by_field_name("body")
            for member in body.named_children if body is not None else []:
                member_name = member.child_by_field_name("name")
                if member.type == "method_definition" and member_name is not None:
                    add(f"{cls}.{text(member_name)}", "method", member, member)
                elif member.type in ("public_field_definition", "field_definition") and member_name:
                    add(f"{cls}.{text(member_name)}", "attribute", member)
                    index.attributes[text(member_name)].append(loc(member))
        elif kind in ("function_declaration", "generator_function_declaration") and name_node:
            add(text(name_node), "function", node, node)
        elif kind in ("interface_declaration", "type_alias_declaration", "enum_declaration"):
            if name_node is not None:
                add(text(name_node), kind.split("_")[0], node)
            if kind == "interface_declaration":
                body = node.child_by_field_name("body")
                for member in body.named_children if body is not None else []:
                    member_name = member.child_by_field_name("name")
                    if member_name is not None:
                        index.attributes[text(member_name)].append(loc(member))
        elif (
            kind == "variable_declarator"
            and name_node is not None
            and name_node.type == "identifier"
        ):
            value = node.child_by_field_name("value")
            is_fn = value is not None and value.type in (
                "arrow_function",
                "function_expression",
                "function",
            )
            top = (
                node.parent is not None
                and node.parent.parent is not None
                and (node.parent.parent.type in ("program", "export_statement"))
            )
            if top:
                add(
                    text(name_node),
                    "function" if is_fn else "variable",
                    node,
                    value if is_fn else None,
                )
        elif kind == "string_fragment":
            value = text(node)
            if _STRING_WORTH.match(value):
                index.strings[value].append(loc(node))
        elif kind == "member_expression":
            obj = node.child_by_field_name("object")
            prop = node.child_by_field_name("property")
            if obj is not None and prop is not None and text(obj) == "process.env":
                index.strings[text(prop)].append(loc(node))
        elif kind == "call_expression":
            _ts_call(index, node, text, loc)
        stack.extend(reversed(node.children))


def _ts_call(index: CodeIndex, node: Any, text: Any, loc: Any) -> None:
    """Express/Koa/Hono routes and commander commands and options."""
    func = node.child_by_field_name("function")
    args = node.child_by_field_name("arguments")
    if func is None or func.type != "member_expression" or args is None:
        return
    prop = func.child_by_field_name("property")
    first = args.named_children[0] if args.named_children else None
    if prop is None or first is None or first.type not in ("string", "template_string"):
        return
    verb = text(prop)
    value = text(first)[1:-1]
    if verb in _ROUTE_METHODS and value.startswith("/"):
        index.routes.append(Route(verb.upper(), value, loc(node)))
    elif verb == "command" and value:
        index.commands.setdefault(value.split()[0], loc(node))
        index.strings.setdefault(f"#command:{value.split()[0]}", []).append(loc(node))
    elif verb in ("option", "requiredOption"):
        for flag in re.findall(r"--[a-z][\w-]*", value):
            index.flags[flag].setdefault("", loc(node))


# --- manifests ----------------------------------------------------------------------

_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def _add_requirement(index: CodeIndex, req: str, text: str, rel: str) -> None:
    m = _REQ_NAME.match(req)
    if not m:
        return
    spec = m.group(2).split(";")[0].strip()
    name = norm_package(m.group(1))
    line = _line_containing(text, f'"{req}') if f'"{req}' in text else _line_containing(text, req)
    index.deps[name].append(Dependency(name, spec, "pypi", Loc(rel, line)))


def _index_pyproject(index: CodeIndex, text: str, rel: str) -> None:
    data = tomllib.loads(text)
    project = data.get("project", {})
    for req in project.get("dependencies", []):
        _add_requirement(index, req, text, rel)
    for reqs in project.get("optional-dependencies", {}).values():
        for req in reqs:
            _add_requirement(index, req, text, rel)
    for reqs in data.get("dependency-groups", {}).values():
        for req in reqs:
            if isinstance(req, str):
                _add_requirement(index, req, text, rel)
    for script in project.get("scripts", {}):
        index.programs[script] = Loc(rel, _line_containing(text, f"{script} ="))
    if project.get("name"):
        index.deps[norm_package(project["name"])].append(
            Dependency(norm_package(project["name"]), "", "pypi", Loc(rel, 1))
        )


def _index_uv_lock(index: CodeIndex, text: str, rel: str) -> None:
    data = tomllib.loads(text)
    for package in data.get("package", []):
        name, version = package.get("name"), package.get("version")
        if name and version:
            line = _line_containing(text, f'name = "{name}"\nversion = "{version}"')
            index.locked.setdefault(norm_package(name), (str(version), Loc(rel, line)))


def _index_requirements(index: CodeIndex, text: str, rel: str) -> None:
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = _REQ_NAME.match(line)
        if m:
            name = norm_package(m.group(1))
            spec = m.group(2).split(";")[0].strip()
            index.deps[name].append(Dependency(name, spec, "pypi", Loc(rel, n)))
            if spec.startswith("==") and "," not in spec:
                index.locked.setdefault(name, (spec[2:], Loc(rel, n)))


def _index_package_json(index: CodeIndex, text: str, rel: str) -> None:
    data = json.loads(text)
    if not isinstance(data, dict):
        return
    for key in ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies"):
        for name, spec in (data.get(key) or {}).items():
            line = _line_containing(text, f'"{name}"')
            index.deps[name.lower()].append(
                Dependency(name.lower(), str(spec), "npm", Loc(rel, line))
            )
    bin_field = data.get("bin")
    if isinstance(bin_field, str) and data.get("name"):
        index.programs[str(data["name"]).split("/")[-1]] = Loc(rel, _line_containing(text, '"bin"'))
    elif isinstance(bin_field, dict):
        for name in bin_field:
            index.programs[name] = Loc(rel, _line_containing(text, f'"{name}"'))
    if data.get("name"):
        index.deps[str(data["name"]).lower()].append(
            Dependency(str(data["name"]).lower(), "", "npm", Loc(rel, 1))
        )


def _index_package_lock(index: CodeIndex, text: str, rel: str) -> None:
    data = json.loads(text)
    packages = data.get("packages") or {}
    for key, info in packages.items():
        if not key.startswith("node_modules/") or "/node_modules/" in key:
            continue
        name = key.removeprefix("node_modules/").lower()
        if isinstance(info, dict) and info.get("version"):
            line = _line_containing(text, f'"{key}"')
            index.locked.setdefault(name, (str(info["version"]), Loc(rel, line)))
    for name, info in (data.get("dependencies") or {}).items():
        if isinstance(info, dict) and info.get("version"):
            line = _line_containing(text, f'"{name}"')
            index.locked.setdefault(name.lower(), (str(info["version"]), Loc(rel, line)))
