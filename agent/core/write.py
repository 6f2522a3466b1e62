"""Atomic writes and the checks on an output path before any work is paid for.

Writes go to a temp file in the
target folder and are renamed into place, so a failed run never leaves half a
document, and an existing file is never replaced without `force`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import pydantic_core
from pydantic import BaseModel

from agent.core.errors import InputError
from agent.core.files import is_input, os_error

MAX_NAME_BYTES = 200

# Characters Windows forbids in file names; `/` and `\` separate paths everywhere.
_WINDOWS_INVALID = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_ALWAYS_INVALID = re.compile(r"[/\\\x00-\x1f\x7f]")
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def safe_filename(name: str, safe_names: bool = False) -> str:
    """A single file name that cannot leave its folder, or a Windows-safe one with `safe_names`.

    Path separators, control characters and `..` become `_`; reserved device names
    (CON, COM1, ...) get a `_` suffix; leading and trailing dots and spaces go; the
    result is at most 200 UTF-8 bytes and keeps its extension.
    """
    name = unicodedata.normalize("NFC", name)
    name = (_WINDOWS_INVALID if safe_names else _ALWAYS_INVALID).sub("_", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not re.fullmatch(r"[A-Za-z0-9]{1,10}", ext):
        stem, ext = name, ""
    # The extension is split off first so a title ending in dots cannot eat it.
    stem = re.sub(r"\.{2,}", "_", stem).strip(" .") or "untitled"
    first, dot, rest = stem.partition(".")
    if first.strip(" ").upper() in _RESERVED:
        stem = f"{first}_{dot}{rest}"
    suffix = f".{ext}" if ext else ""
    budget = MAX_NAME_BYTES - len(suffix.encode())
    # Cut on bytes, then drop a character split by the cut.
    stem = stem.encode()[:budget].decode("utf-8", errors="ignore").rstrip(" .") or "untitled"
    return stem + suffix


def check_output(
    path: Path, force: bool = False, what: str = "file", *, updates: bool = False
) -> Path:
    """Refuse, before any work is paid for, an output path the writer would refuse later.

    A folder, an existing file without `force`, a file this run reads (the TDD,
    the document under review) even with `force`, a name the file system cannot
    hold, or a parent that is a file: each is one InputError line. `updates`:
    the file is meant to be read and rewritten (a cassette in append mode).
    """
    path = Path(path)
    if "\x00" in str(path) or any(len(part.encode()) > 255 for part in path.parts):
        raise InputError(f"{str(path)[:80]!r}: a name in this path is too long; use a shorter one")
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise os_error(path, e, what) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path} is a folder; pass a {what} path")
        if is_input(path) and not updates:
            raise InputError(f"{path} is an input of this run; write the {what} somewhere else")
        if not force:
            raise InputError(f"{path} exists; pass --force to overwrite it or choose another path")
    for parent in path.parents:
        try:
            parent_st = Path(parent).stat()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise os_error(parent, e, "folder") from None
        if not stat.S_ISDIR(parent_st.st_mode):
            raise InputError(f"cannot create {path}: {parent} is a file; fix the path")
        break
    return path


def write_atomic(path: Path, text: str, force: bool = False, *, updates: bool = False) -> None:
    """Write `text` as UTF-8 via a temp file and a rename; never overwrite without force.

    `updates`: the file was read to be rewritten on purpose (`tidsmith update`).
    """
    write_bytes_atomic(path, text.encode(), force=force, updates=updates)


def write_json_atomic(
    path: Path, model_or_obj: BaseModel | Any, force: bool = True, *, updates: bool = False
) -> None:
    """Write a pydantic model (or anything pydantic can serialise) as indented JSON."""
    if isinstance(model_or_obj, BaseModel):
        data = model_or_obj.model_dump_json(indent=2)
    else:
        data = pydantic_core.to_json(model_or_obj, indent=2).decode()
    write_atomic(path, data + "\n", force=force, updates=updates)


def write_bytes_atomic(
    path: Path, data: bytes, force: bool = False, fsync: bool = True, *, updates: bool = False
) -> None:
    """Write `data` to `path` atomically; the old file (if any) stays intact on failure.

    Never overwrites without `force`, and never overwrites a file this process
    read as an input (`agent.core.files`), whatever `force` says, unless it `updates`
    that file on purpose (a checkpoint, a cassette). Every OS error is
    one InputError line, and the temp file is removed on every failure.
    """
    path = check_output(Path(path), force, updates=updates)
    existed = os.path.lexists(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise InputError(f"cannot create the folder for {path}: a file is in the way") from e
    except OSError as e:
        raise InputError(f"cannot create {path.parent} ({e.strerror}); choose another --out") from e
    # Same folder, so the rename cannot cross file systems; hidden, so tools that
    # watch the folder ignore it while it is incomplete.
    tmp = path.with_name(f".{path.name[:100]}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        # O_EXCL with mode 0o666 lets the umask decide permissions, as for a plain open().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if existed:
            # Overwriting keeps the file's permissions, as an in-place write would.
            with contextlib.suppress(OSError):
                shutil.copymode(path, tmp)
        tmp.replace(path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise os_error(path, e) from None
        raise
