"""The Python side of the codebase index, read with `ast` (nothing is imported or run).

Definitions, re-exports, string literals, attribute and import usages, web
routes, and argparse subcommands with their flags. Imports only the check
model and `py_params` (agent.check.code_blocks); nothing of agent outside agent.check.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from agent.check.code_blocks import py_params
from agent.check.model import ROUTE_METHODS, STRING_WORTH, CodeIndex, Definition, Loc, Route


def python_module(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    if parts[0] == "src" and len(parts) > 1:
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def index_python(index: CodeIndex, text: str, rel: str) -> None:
    """Index one Python file: its top-level definitions, then what its code uses and declares."""
    tree = ast.parse(text)
    module = python_module(rel)
    if module:
        index.modules[module] = rel
    _python_definitions(index, tree, module, rel)
    _python_usages(index, tree, rel)
    _python_argparse(index, tree, rel)


def _add_python_definition(
    index: CodeIndex,
    module: str,
    rel: str,
    name: str,
    kind: str,
    node: ast.AST,
    args: ast.arguments | None = None,
) -> None:
    index.add_definition(
        Definition(
            name=name,
            kind=kind,
            module=module,
            loc=Loc(rel, getattr(node, "lineno", 1)),
            params=py_params(args) if args is not None else None,
            open_params=args is not None and args.kwarg is not None,
        )
    )


def _python_definitions(index: CodeIndex, tree: ast.Module, module: str, rel: str) -> None:
    """Top-level functions, classes (methods, annotated attributes), variables, re-exports."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            _add_python_definition(index, module, rel, node.name, "function", node, node.args)
        elif isinstance(node, ast.ClassDef):
            _add_python_definition(index, module, rel, node.name, "class", node)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    name = f"{node.name}.{item.name}"
                    _add_python_definition(index, module, rel, name, "method", item, item.args)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    name = f"{node.name}.{item.target.id}"
                    _add_python_definition(index, module, rel, name, "attribute", item)
                    index.attributes[item.target.id].append(Loc(rel, item.lineno))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    _add_python_definition(index, module, rel, target.id, "variable", node)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            source = _absolute(module, rel, node)
            for alias in node.names:
                index.reexports[module][alias.asname or alias.name] = Loc(rel, node.lineno)
                index.reexports[module].setdefault(
                    f"->{alias.asname or alias.name}", Loc(source, 0)
                )


def _python_usages(index: CodeIndex, tree: ast.Module, rel: str) -> None:
    """String literals, attribute chains, imported names, routes anywhere in the file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if STRING_WORTH.match(node.value):
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
    if verb in ROUTE_METHODS:
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
            flags_by_command = _flags_in(fn.body, {param: ""}, rel, index, record=False)
            if flags_by_command.get(""):
                helper_flags[fn.name] = flags_by_command[""]
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.Module):
            continue
        body = fn.body
        names = _subparser_names(index, body, rel)
        if not names:
            continue
        _flags_in(body, names, rel, index, record=True)
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


def _subparser_names(index: CodeIndex, body: list[ast.stmt], rel: str) -> dict[str, str]:
    """Variables holding `add_parser("x")` subparsers (variable -> command); records commands."""
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
    return names


def _flags_in(
    body: list[ast.stmt], names: dict[str, str], rel: str, index: CodeIndex, *, record: bool
) -> dict[str, list[tuple[str, Loc]]]:
    """Flags added to the parsers in `names` (variable -> command), groups and loops included."""
    names = dict(names)
    flags: dict[str, list[tuple[str, Loc]]] = defaultdict(list)
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
                            flags[names[m]].append((flag, loc))
    for node in ast.walk(module):
        for var, command in list(names.items()):
            for flag, loc in _add_argument(node, var, rel):
                flags[command].append((flag, loc))
    if record:
        for command, command_flags in flags.items():
            for flag, loc in command_flags:
                index.flags[flag].setdefault(command, loc)
    return flags


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
