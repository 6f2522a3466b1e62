"""The one way tidsmith reads a file a user named: bounded, regular files only.

Every input (the TDD, a document to review, a template, research documents,
cassettes) goes through `read_bytes`/`read_text`. A FIFO, a device, a folder,
a symlink loop, an over-long name, a huge or binary file all become one
`InputError` line instead of a hang, a MemoryError or a traceback. The file is
opened non-blocking and checked with fstat before a byte is read, so a FIFO
cannot stall the caller, and at most `limit + 1` bytes are ever read.

Files read here are remembered (device and inode), so the output writer can
refuse to write over an input of the same run (`agent.core.write`).
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from pathlib import Path

from agent.core.errors import InputError

# Inputs of this process: (device, inode) of every file read through this module.
_inputs: set[tuple[int, int]] = set()

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def os_error(path: Path | str, e: OSError, what: str = "file") -> InputError:
    """One line for an OS error on a path the user gave, saying what to do."""
    shown = _shown(path)
    code = e.errno
    if code == errno.ENOENT:
        return InputError(f"{shown}: no such file; check the path to the {what}")
    if code == errno.ELOOP:
        return InputError(f"{shown} is a symlink loop; point it at a real {what}")
    if code == errno.ENAMETOOLONG:
        return InputError(f"{shown}: a name in this path is too long; use a shorter one")
    if code == errno.EISDIR:
        return InputError(f"{shown} is a folder; pass a {what}")
    if code == errno.ENOTDIR:
        return InputError(
            f"cannot create or open {shown}: part of the path is a file; fix the path"
        )
    if code in (errno.EACCES, errno.EPERM):
        return InputError(f"cannot open {shown} (permission denied); check its permissions")
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return InputError(f"cannot write {shown} ({e.strerror}); free some space and rerun")
    return InputError(f"cannot use {shown} ({e.strerror or e}); check the path")


def _shown(path: Path | str) -> str:
    """The path as printed: an over-long name is cut, control characters escaped."""
    text = str(path)
    if len(text) > 200:
        text = text[:120] + "…" + text[-40:]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def read_bytes(
    path: Path | str, limit: int, what: str = "file", hint: str = "", *, remember: bool = False
) -> bytes:
    """At most `limit` bytes of a regular file, or an InputError naming the problem.

    `hint` follows the size error (what to do about a file over the limit).
    `remember`: the file is an input of the run (a TDD, a document under review,
    a template, a research document), which the writer must never replace.
    Our own state (run records, checkpoints, caches) is not.
    """
    shown = _shown(path)
    hint = f"; {hint}" if hint else ""
    try:
        st = Path(path).stat()
    except OSError as e:
        raise os_error(path, e, what) from None
    except ValueError:  # a NUL byte in the path
        raise InputError(f"{shown} is not a usable path; check it") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{shown} is a folder; pass a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{shown} is not a regular file (a pipe or a device); pass a {what}")
    if st.st_size > limit:
        raise InputError(f"{shown} is {_size(st.st_size)}, over the {_size(limit)} limit{hint}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise os_error(path, e, what) from None
    try:
        # The path may have been swapped for a FIFO between stat and open.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{shown} is not a regular file (a pipe or a device); pass a {what}")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise os_error(path, e, what) from None
    finally:
        os.close(fd)
    if size > limit:
        raise InputError(f"{shown} is over the {_size(limit)} limit{hint}")
    if remember:
        _inputs.add((st.st_dev, st.st_ino))
    return b"".join(chunks)


def decode_text(raw: bytes, path: Path | str, what: str = "file") -> str:
    """UTF-8 text (a UTF-8 BOM dropped, newlines made `\\n`), or an InputError."""
    shown = _shown(path)
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise InputError(f"{shown} is {name} text; re-save it as UTF-8")
    if b"\x00" in raw:
        raise InputError(f"{shown} looks binary (it has NUL bytes); pass a {what} in text")
    try:
        # utf-8-sig: editors on Windows often prepend a BOM, which is not content.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{shown} is not UTF-8 (bad byte at offset {e.start}); re-save it as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(
    path: Path | str, limit: int, what: str = "file", hint: str = "", *, remember: bool = False
) -> str:
    """A bounded regular file as UTF-8 text, or an InputError naming the problem."""
    return decode_text(read_bytes(path, limit, what, hint, remember=remember), path, what)


def is_input(path: Path | str) -> bool:
    """True when `path` is (the same file as) one this process read as an input."""
    try:
        st = Path(path).stat()
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) in _inputs


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f}".removesuffix(".0") + " MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"
