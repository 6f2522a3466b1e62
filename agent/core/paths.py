"""Where a document goes: the output naming convention.

A TDD at `0xcc/tdds/002_FTDD|Model_Management.md` becomes a TID at
`0xcc/tids/002_FTID|Model_Management.md`.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.core.errors import ConfigError, InputError
from agent.core.files import os_error
from agent.core.tdd import Tdd
from agent.core.write import check_output, safe_filename

_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_SCOPE = re.compile(r"(?:^|[\W_])([FP])TDD(?:[\W_]|$)", re.IGNORECASE)
_NUMBERED = re.compile(r"^(\d+)_")


def default_output_path(
    tdd: Tdd, doc_kind: str, out: Path | None = None, safe_names: bool = False
) -> Path:
    """Where the `doc_kind` (TID, SPEC, ...) document for `tdd` goes under the naming convention.

    `out` ending in `.md` is the file itself; any other `out` is the folder. With no
    `out`, a TDD in a `tdds` folder gets a sibling `<kind>s` folder, any other TDD a
    `<kind>s` folder beside it. A TDD without a number takes the next free one there.
    """
    kind = doc_kind.strip().upper()
    if not _KIND.match(kind):
        raise ConfigError(f"document kind {doc_kind!r} is not a word like TID or SPEC")
    if out is not None and out.suffix.lower() == ".md":
        return _check_file_path(out)
    if out is not None:
        try:
            is_file = out.exists() and not out.is_dir()
        except OSError as e:
            raise os_error(out, e, "folder") from None
        if is_file:
            raise InputError(f"{out} is a file, not a folder; pass a folder or a .md path")
        folder = out
    else:
        tdd_path = Path(tdd.path)
        parent = tdd_path.parent
        in_tdds = parent.name.lower() == "tdds"
        folder = (parent.parent if in_tdds else parent) / f"{kind.lower()}s"
    number = (tdd.number or _next_number(folder)).zfill(3)
    scope = _scope(tdd)
    name = f"{number}_{scope}{kind}|{tdd.feature_slug}.md"
    return folder / safe_filename(name, safe_names=safe_names)


def _check_file_path(path: Path) -> Path:
    """An explicit `.md` output path, refused when it cannot be a file we write."""
    # Existence is decided later (with --force); a folder, an input or a bad name now.
    return check_output(path, force=True, what="document")


def _scope(tdd: Tdd) -> str:
    """`F` for a feature TDD, `P` for a project one (`000_PTDD|...`), from its name or id."""
    for name in (Path(tdd.path).stem, tdd.doc_id):
        match = _SCOPE.search(name)
        if match:
            return match.group(1).upper()
    return "F"


def _next_number(folder: Path) -> str:
    """One more than the highest `NNN_` prefix in `folder`, or 001 when none."""
    numbers = [0]
    if folder.is_dir():
        for child in folder.iterdir():
            match = _NUMBERED.match(child.name)
            if match:
                numbers.append(int(match.group(1)))
    return f"{max(numbers) + 1:03d}"


def run_record_path(output: Path) -> Path:
    """Run records sit in a hidden folder beside the documents they describe."""
    return output.parent / ".tidsmith" / f"{output.stem}.run.json"
