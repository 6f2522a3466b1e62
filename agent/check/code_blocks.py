"""Claims in a document's fenced code blocks, read by the block's language.

Python with `ast`, TypeScript/JavaScript line by line, TOML and JSON
manifests, requirements, file trees (`├── name`), shell lines (the codebase's
own commands, env variables, pinned installs) and HTTP route lists. Mermaid
blocks claim nothing. Imports only the check model; nothing of agent outside
agent.check.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
import tomllib

from markdown_it.token import Token

from agent.check.model import Claim

HTTP_METHODS = "GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS"
_ENDPOINT_LINE = re.compile(rf"^\s*({HTTP_METHODS})\s+(/[^\s`'\"]*)")
PY_REQ = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*((?:==|>=|~=|<=|!=|<|>)\s*\d[\w.*+!-]*"
    r"(?:\s*,\s*(?:==|>=|~=|<=|!=|<|>)\s*\d[\w.*+!-]*)*)$"
)
NPM_REQ = re.compile(r"^((?:@[a-z0-9._-]+/)?[a-z0-9][a-z0-9._-]*)@([\^~]?\d[\w.+-]*)$")
_TREE = re.compile(r"^(?P<lead>[│|\s]*)(?:[├└]──|[|`]--|[+\\]--)\s*(?P<name>\S.*)$")
_PY_LANGS = {"python", "py", "python3", "pycon"}
_SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh", "shell-session", ""}
_TS_LANGS = {"typescript", "ts", "tsx", "javascript", "js", "jsx", "mjs"}
_REQ_LANGS = {"requirements", "pip-requirements", "requirements.txt"}


def block_claims(token: Token, file_hint: str, programs: frozenset[str]) -> list[Claim]:
    assert token.map is not None
    lang = (token.info.split() or [""])[0].lower()
    first = token.map[0] + 2  # the line after the opening fence, 1-based
    code = token.content
    if lang == "mermaid":
        return []  # node labels drawn by code from the section's diagram data, not claims
    if lang in _PY_LANGS:
        return python_claims(code, first, file_hint)
    if lang in _TS_LANGS:
        return ts_claims(code, first, file_hint)
    if lang == "toml":
        return toml_claims(code, first)
    if lang == "json" or (lang == "" and code.lstrip().startswith("{")):
        return json_claims(code, first)
    if lang in _REQ_LANGS:
        return requirement_claims(code, first)
    if any(_TREE.match(line) for line in code.splitlines()):
        return tree_claims(code, first)
    if lang in _SHELL_LANGS:
        return shell_claims(code, first, programs)
    if lang in ("http", "text", "txt"):
        return endpoint_lines(code, first)
    return []


def endpoint_lines(code: str, first: int) -> list[Claim]:
    """`GET /v1/items` lines (HTTP examples, route lists)."""
    out: list[Claim] = []
    for n, line in enumerate(code.splitlines()):
        if m := _ENDPOINT_LINE.match(line):
            out.append(Claim(kind="endpoint", value=m.group(2), method=m.group(1), line=first + n))
    return out


def python_claims(code: str, first: int, file_hint: str = "") -> list[Claim]:
    """Imports, definitions and keyword calls of a Python block, parsed with `ast`."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    out: list[Claim] = []
    imported: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _stdlib(alias.name):
                    continue
                imported[alias.asname or alias.name] = alias.name
                out.append(Claim(kind="import", value=alias.name, line=first + node.lineno - 1))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if _stdlib(node.module):
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                imported[alias.asname or alias.name] = full
                out.append(Claim(kind="import", value=full, line=first + node.lineno - 1))
    # A definition is a claim only where the block says which file it is in;
    # otherwise it is an example of the reader's own code.
    for node in tree.body if file_hint else []:
        for name, line, params in _py_defs(node):
            out.append(
                Claim(kind="symbol", value=name, line=first + line - 1, params=params,
                      in_file=file_hint)
            )  # fmt: skip
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head = name.split(".")[0] if name else ""
        if not name or head not in imported:
            continue
        target = imported[head] + name[len(head) :]
        keywords = [k.arg for k in node.keywords if k.arg]
        if keywords:
            out.append(
                Claim(kind="symbol", value=target, params=keywords, line=first + node.lineno - 1)
            )
    return sorted(out, key=lambda c: c.line)


def _py_defs(node: ast.stmt) -> list[tuple[str, int, list[str] | None]]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return [(node.name, node.lineno, py_params(node.args))]
    if isinstance(node, ast.ClassDef):
        defs: list[tuple[str, int, list[str] | None]] = [(node.name, node.lineno, None)]
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                defs.append((f"{node.name}.{item.name}", item.lineno, py_params(item.args)))
        return defs
    return []


def py_params(args: ast.arguments) -> list[str]:
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return [n for n in names if n not in ("self", "cls")]


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names or module == "__future__"


_TS_IMPORT = re.compile(r"""^\s*import\s+(?:type\s+)?(.*?)\s+from\s+['"]([^'"]+)['"]""")
_TS_DEF = re.compile(
    r"^\s*(?:export\s+)?(?:default\s+)?(?:abstract\s+)?(?:async\s+)?"
    r"(class|function|interface|type|enum)\s+([A-Za-z_$][\w$]*)\s*(?:\(([^)]*)\))?"
)


def ts_claims(code: str, first: int, file_hint: str = "") -> list[Claim]:
    """Imports and top-level definitions of a TypeScript/JavaScript block.

    Blocks in documents are often fragments, so they are read line by line
    here; the codebase side is parsed with tree-sitter (`agent.check.index_typescript`).
    """
    out: list[Claim] = []
    for n, line in enumerate(code.splitlines()):
        if m := _TS_IMPORT.match(line):
            source = m.group(2)
            if source.startswith("."):
                names = re.findall(r"[A-Za-z_$][\w$]*", m.group(1).replace(" as ", " "))
                for name in names[:1] if "{" not in m.group(1) else names:
                    out.append(Claim(kind="symbol", value=name, line=first + n))
            elif not source.startswith("node:"):
                out.append(Claim(kind="import", value=source, line=first + n, ecosystem="npm"))
        elif file_hint and (m := _TS_DEF.match(line)):
            params = None
            if m.group(3) is not None:
                params = [p for p in re.findall(r"([A-Za-z_$][\w$]*)\??\s*(?::|,|$)", m.group(3))]
            out.append(
                Claim(kind="symbol", value=m.group(2), line=first + n, params=params,
                      in_file=file_hint)
            )  # fmt: skip
    return out


def toml_claims(code: str, first: int) -> list[Claim]:
    """A pyproject block gives packages; any other TOML block gives configuration keys."""
    try:
        data = tomllib.loads(code)
    except tomllib.TOMLDecodeError:
        return []
    lines = code.splitlines()
    out: list[Claim] = []
    if "project" in data or "dependency-groups" in data:
        for n, line in enumerate(lines):
            for req in re.findall(r"""["']([^"']+)["']""", line):
                if m := PY_REQ.match(req.strip()):
                    out.append(
                        Claim(kind="package", value=m.group(1), version=m.group(2),
                              ecosystem="pypi", line=first + n)
                    )  # fmt: skip
        return out
    table = ""
    for n, line in enumerate(lines):
        stripped = line.strip()
        if m := re.match(r"^\[\[?\s*([\w.-]+)\s*\]\]?", stripped):
            table = m.group(1)
            out.append(Claim(kind="config", value=table, line=first + n))
        elif m := re.match(r"^([A-Za-z_][\w-]*)\s*=", stripped):
            key = f"{table}.{m.group(1)}" if table else m.group(1)
            out.append(Claim(kind="config", value=key, line=first + n))
    return out


def json_claims(code: str, first: int) -> list[Claim]:
    """A package.json block's dependencies, with versions."""
    try:
        data = json.loads(code)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    lines = code.splitlines()
    out: list[Claim] = []
    for key in ("dependencies", "devDependencies", "peerDependencies"):
        deps = data.get(key)
        if not isinstance(deps, dict):
            continue
        for name, spec in deps.items():
            line = next((n for n, text in enumerate(lines) if f'"{name}"' in text), 0)
            out.append(
                Claim(kind="package", value=name, version=str(spec), ecosystem="npm",
                      line=first + line)
            )  # fmt: skip
    return out


def requirement_claims(code: str, first: int) -> list[Claim]:
    out: list[Claim] = []
    for n, line in enumerate(code.splitlines()):
        if m := PY_REQ.match(line.split("#")[0].strip()):
            out.append(
                Claim(kind="package", value=m.group(1), version=m.group(2).replace(" ", ""),
                      ecosystem="pypi", line=first + n)
            )  # fmt: skip
    return out


def tree_claims(code: str, first: int) -> list[Claim]:
    """Paths in a file tree (`├── name`), with `# new` or `(new)` notes marking new files."""
    out: list[Claim] = []
    stack: list[tuple[int, str]] = []  # (depth, name) of the folders above
    root = ""
    for n, raw in enumerate(code.splitlines()):
        m = _TREE.match(raw)
        if not m:
            name = raw.split("#")[0].strip()
            if name.endswith("/") and not stack and not out:
                root = name.rstrip("/")
            continue
        depth = len(m.group("lead"))
        text = m.group("name")
        name, _, note = text.partition("#")
        name = name.strip()
        note_new = bool(re.search(r"\bnew\b", note, re.I)) or bool(
            re.search(r"\((?:new|planned)\)", name, re.I)
        )
        name = re.sub(r"\s*\(.*\)\s*$", "", name).strip()
        # A box drawing (`└────┘`, a diagram's ASCII form) starts like a tree line
        # but names nothing: a name has a letter or a digit in it.
        if not name or " " in name or not re.search(r"\w", name):
            continue
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parts = [root] if root else []
        parts += [s for _, s in stack]
        path = "/".join([*parts, name.rstrip("/")])
        out.append(Claim(kind="path", value=path, line=first + n, new=note_new, root=root))
        if name.endswith("/"):
            stack.append((depth, name.rstrip("/")))
    return out


_WRAPPERS = {"uv": ("run",), "uvx": (), "npx": (), "pnpm": ("exec",), "poetry": ("run",)}


def shell_claims(code: str, first: int, programs: frozenset[str]) -> list[Claim]:
    """Commands of the codebase's own programs, env variables set, pinned installs."""
    out: list[Claim] = []
    joined: list[tuple[int, str]] = []
    for n, line in enumerate(code.splitlines()):
        text = line.rstrip()
        if joined and (joined[-1][1].endswith("\\") or _continues(text, joined[-1][1], programs)):
            joined[-1] = (joined[-1][0], joined[-1][1].rstrip("\\") + " " + text.strip())
        else:
            joined.append((n, text))
    for n, text in joined:
        for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", text.split(" # ")[0]):
            out.extend(_shell_command(part.strip(), first + n, programs))
    return out


def _continues(text: str, previous: str, programs: frozenset[str]) -> bool:
    """A usage line's continuation: indented options under a program's line."""
    head = previous.strip().split(" ")[0] if previous.strip() else ""
    return head in programs and text.startswith(" ") and text.strip().startswith(("[", "-"))


def _shell_command(text: str, line: int, programs: frozenset[str]) -> list[Claim]:
    text = text.removeprefix("$ ").strip()
    if not text or text.startswith("#"):
        return []
    words = _split(text)
    out: list[Claim] = []
    if words and words[0] == "export":
        words = words[1:]
    while words and (m := re.match(r"^([A-Z][A-Z0-9_]*)=", words[0])):
        if "_" in m.group(1):
            out.append(Claim(kind="env", value=m.group(1), line=line))
        words = words[1:]
    if not words:
        return out
    if words[0] in ("pip", "pip3") and "install" in words:
        out.extend(requirement_claims("\n".join(w for w in words if "==" in w), line))
        return out
    if words[0] in ("npm", "pnpm", "yarn") and len(words) > 1 and words[1] in ("install", "add"):
        for w in words[2:]:
            if m := NPM_REQ.match(w):
                out.append(
                    Claim(kind="package", value=m.group(1), version=m.group(2),
                          ecosystem="npm", line=line)
                )  # fmt: skip
        return out
    words = _unwrap(words)
    if words and words[0] in programs:
        out.extend(command_claims(" ".join(words), line, programs))
    return out


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def _unwrap(words: list[str]) -> list[str]:
    """`uv run --extra x tidsmith generate` -> `tidsmith generate`."""
    if not words or words[0] not in _WRAPPERS:
        return words
    rest = words[1:]
    for sub in _WRAPPERS[words[0]]:
        if rest and rest[0] == sub:
            rest = rest[1:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if rest and "=" not in option and option in ("--extra", "--with", "--group", "-p"):
            rest.pop(0)
    return rest


def command_claims(text: str, line: int, programs: frozenset[str]) -> list[Claim]:
    """`prog sub --a --b` -> a command claim `prog sub` and one flag claim per flag."""
    words = _split(text.replace("[", " ").replace("]", " ").replace("|", " | "))
    program = words[0]
    sub = ""
    rest = words[1:]
    if rest and re.match(r"^[a-z][a-z0-9-]*$", rest[0]) and rest[0] not in programs:
        sub = rest[0]
    command = f"{program} {sub}".strip()
    out = [Claim(kind="command", value=command, program=program, command=sub, line=line)]
    seen: set[str] = set()
    for word in rest:
        flag = re.split(r"[ =]", word)[0]
        if re.match(r"^--[a-z][a-z0-9-]*$", flag) and flag not in seen:
            seen.add(flag)
            out.append(Claim(kind="flag", value=flag, program=program, command=sub, line=line))
    return out
