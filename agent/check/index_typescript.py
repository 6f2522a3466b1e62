"""The TypeScript and JavaScript side of the codebase index, read with tree-sitter.

The TypeScript and TSX grammars of `tree-sitter-typescript` (compiled into its
wheel) give definitions, interface members, string literals, `process.env`
reads, Express/Koa/Hono routes and commander commands and options. Imports
only the check model; nothing of agent outside agent.check.
"""

from __future__ import annotations

import re
from typing import Any

from agent.check.model import ROUTE_METHODS, STRING_WORTH, CodeIndex, Definition, Loc, Route

_PARSERS: dict[bool, Any] = {}


def _ts_parser(tsx: bool) -> Any:
    # Lazy: tree-sitter and its grammars load only for a codebase with TypeScript or JavaScript.
    import tree_sitter_typescript as grammars
    from tree_sitter import Language, Parser

    language = grammars.language_tsx() if tsx else grammars.language_typescript()
    return Parser(Language(language))


def index_typescript(index: CodeIndex, source: bytes, rel: str) -> None:
    """Index one TypeScript/JavaScript file, every node in document order."""
    tsx = rel.endswith((".tsx", ".jsx"))
    if tsx not in _PARSERS:
        _PARSERS[tsx] = _ts_parser(tsx)
    tree = _PARSERS[tsx].parse(source)
    module = re.sub(r"\.(?:[cm]?[jt]sx?)$", "", rel)
    index.modules[module] = rel
    if tree.root_node.has_error:
        index.unparsed.append(rel)
    file = TypeScriptFile(index, source, rel, module)
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        file.visit(node)
        stack.extend(reversed(node.children))


class TypeScriptFile:
    """One parsed TypeScript/JavaScript file, adding what each syntax node declares to the index."""

    def __init__(self, index: CodeIndex, source: bytes, rel: str, module: str) -> None:
        self.index = index
        self.source = source
        self.rel = rel
        self.module = module

    def text(self, node: Any) -> str:
        return self.source[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def loc(self, node: Any) -> Loc:
        return Loc(self.rel, node.start_point[0] + 1)

    def params(self, node: Any) -> tuple[list[str] | None, bool]:
        """A function's positional parameter names, and whether it takes rest or options."""
        plist = node.child_by_field_name("parameters")
        if plist is None:
            return None, False
        names: list[str] = []
        rest = False
        for p in plist.named_children:
            pattern = p.child_by_field_name("pattern") or p
            if pattern.type == "identifier":
                names.append(self.text(pattern))
            elif pattern.type == "rest_pattern":
                rest = True
            else:
                rest = True  # a destructured options object: names are not positional
        return names, rest

    def add(self, name: str, kind: str, node: Any, fn: Any = None) -> None:
        plist, rest = self.params(fn) if fn is not None else (None, False)
        self.index.add_definition(Definition(name, kind, self.module, self.loc(node), plist, rest))

    def visit(self, node: Any) -> None:
        kind = node.type
        name_node = node.child_by_field_name("name")
        if kind in ("class_declaration", "abstract_class_declaration", "class") and name_node:
            self._class(node, name_node)
        elif kind in ("function_declaration", "generator_function_declaration") and name_node:
            self.add(self.text(name_node), "function", node, node)
        elif kind in ("interface_declaration", "type_alias_declaration", "enum_declaration"):
            self._type(node, name_node)
        elif (
            kind == "variable_declarator"
            and name_node is not None
            and name_node.type == "identifier"
        ):
            self._variable(node, name_node)
        elif kind == "string_fragment":
            value = self.text(node)
            if STRING_WORTH.match(value):
                self.index.strings[value].append(self.loc(node))
        elif kind == "member_expression":
            obj = node.child_by_field_name("object")
            prop = node.child_by_field_name("property")
            if obj is not None and prop is not None and self.text(obj) == "process.env":
                self.index.strings[self.text(prop)].append(self.loc(node))
        elif kind == "call_expression":
            self._call(node)

    def _class(self, node: Any, name_node: Any) -> None:
        """A class, its methods and its fields."""
        cls = self.text(name_node)
        self.add(cls, "class", node)
        body = node.child_by_field_name("body")
        for member in body.named_children if body is not None else []:
            member_name = member.child_by_field_name("name")
            if member.type == "method_definition" and member_name is not None:
                self.add(f"{cls}.{self.text(member_name)}", "method", member, member)
            elif member.type in ("public_field_definition", "field_definition") and member_name:
                self.add(f"{cls}.{self.text(member_name)}", "attribute", member)
                self.index.attributes[self.text(member_name)].append(self.loc(member))

    def _type(self, node: Any, name_node: Any) -> None:
        """An interface (with its members as attributes), a type alias or an enum."""
        kind = node.type
        if name_node is not None:
            self.add(self.text(name_node), kind.split("_")[0], node)
        if kind == "interface_declaration":
            body = node.child_by_field_name("body")
            for member in body.named_children if body is not None else []:
                member_name = member.child_by_field_name("name")
                if member_name is not None:
                    self.index.attributes[self.text(member_name)].append(self.loc(member))

    def _variable(self, node: Any, name_node: Any) -> None:
        """A top-level `const x = ...`: a function when it holds one, else a variable."""
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
            self.add(
                self.text(name_node),
                "function" if is_fn else "variable",
                node,
                value if is_fn else None,
            )

    def _call(self, node: Any) -> None:
        """Express/Koa/Hono routes and commander commands and options."""
        func = node.child_by_field_name("function")
        args = node.child_by_field_name("arguments")
        if func is None or func.type != "member_expression" or args is None:
            return
        prop = func.child_by_field_name("property")
        first = args.named_children[0] if args.named_children else None
        if prop is None or first is None or first.type not in ("string", "template_string"):
            return
        verb = self.text(prop)
        value = self.text(first)[1:-1]
        index = self.index
        if verb in ROUTE_METHODS and value.startswith("/"):
            index.routes.append(Route(verb.upper(), value, self.loc(node)))
        elif verb == "command" and value:
            index.commands.setdefault(value.split()[0], self.loc(node))
            index.strings.setdefault(f"#command:{value.split()[0]}", []).append(self.loc(node))
        elif verb in ("option", "requiredOption"):
            for flag in re.findall(r"--[a-z][\w-]*", value):
                index.flags[flag].setdefault("", self.loc(node))
