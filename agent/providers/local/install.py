"""Installing a catalog model: its file found in place, or its slices joined and hashed.

Owns resolving a model id to a file ready to serve (joining, sha256 checks,
verification markers); imports the catalog beside it, never the server process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from agent.core.errors import ConfigError
from agent.providers.local.catalog import (
    GIB,
    MODELS,
    ModelEntry,
    ResolvedModel,
    looks_like_path,
    model_key,
    models_dir,
    package_dir,
    resolve_file,
)

_CHUNK = 8 * (1 << 20)


def resolve_model(
    spec: str = "local", *, on_bytes: Callable[[int, int], None] | None = None
) -> ResolvedModel:
    """Find (joining and verifying on first use) the GGUF file a model id names.

    Args:
        spec: `local`, `local:NAME`, `NAME`, or a path to a .gguf file.
        on_bytes: called with (bytes done, bytes total) while a model is joined or hashed.

    Raises:
        ConfigError: unknown name, model not installed, or its parts do not verify.
    """
    key = model_key(spec)
    if looks_like_path(key):
        return resolve_file(Path(key).expanduser())
    entry = MODELS.get(key)
    if entry is None:
        names = ", ".join(f"local:{name}" for name in MODELS)
        raise ConfigError(
            f"unknown embedded model {key!r}: use one of {names}, or local:/path/to/model.gguf"
        )
    path = _packaged_file(entry) if entry.package else ensure_joined(entry, on_bytes=on_bytes)
    return ResolvedModel(
        name=entry.name,
        display_name=entry.display_name,
        path=path,
        context_window=entry.context_window,
        license_note=entry.license_note,
        extra=entry.extra,
    )


def _packaged_file(entry: ModelEntry) -> Path:
    folder = package_dir(entry.package)
    path = folder / entry.file_name if folder else None
    if path is None or not path.is_file():
        raise ConfigError(
            f"the embedded model {entry.name} ({entry.display_name}) is not installed: "
            f"{entry.install_hint}"
        )
    return path


def find_parts(entry: ModelEntry) -> list[Path]:
    """The slice files of a sliced model, in order.

    Raises:
        ConfigError: naming the missing packages and the command that installs them.
    """
    parts: list[Path] = []
    missing: list[str] = []
    for number in range(1, entry.part_count + 1):
        folder = package_dir(f"{entry.part_module}{number}")
        # Each wheel holds exactly one slice, data/partNN.bin.
        slices = sorted(folder.glob("data/part*.bin")) if folder else []
        if len(slices) == 1:
            parts.append(slices[0])
        else:
            missing.append(f"{entry.part_dist}{number}")
    if missing:
        which = (
            f"all {entry.part_count} {entry.part_dist}N=={entry.part_version} packages"
            if len(missing) == entry.part_count
            else ", ".join(missing)
        )
        raise ConfigError(
            f"the embedded model {entry.name} ({entry.display_name}) is not installed "
            f"(missing {which}): {entry.install_hint}"
        )
    return parts


def ensure_joined(entry: ModelEntry, *, on_bytes: Callable[[int, int], None] | None = None) -> Path:
    """The verified joined file of a sliced model, joining it into the cache if needed."""
    dest = models_dir() / entry.file_name
    if is_verified(dest, size=entry.size, sha256=entry.sha256):
        return dest
    try:
        # A file placed there by hand (or whose marker was lost) is checked, not redone.
        if (
            dest.is_file()
            and dest.stat().st_size == entry.size
            and hash_file(dest, on_bytes=on_bytes) == entry.sha256
        ):
            _write_marker(dest, entry.sha256)
            return dest
        parts = find_parts(entry)
        join_parts(parts, dest, size=entry.size, sha256=entry.sha256, on_bytes=on_bytes)
    except JoinMismatchError as e:
        raise ConfigError(
            f"the {entry.part_dist}1..{entry.part_count} packages do not join into "
            f"{entry.display_name} ({e}); reinstall them: {entry.reinstall_hint}"
        ) from e
    except OSError as e:
        raise ConfigError(
            f"cannot write the embedded model into {dest.parent}: {e}; "
            "set TIDSMITH_CACHE_DIR to a writable folder with room for it"
        ) from e
    return dest


class JoinMismatchError(ValueError):
    """The joined bytes are not the expected file."""


def join_parts(
    parts: list[Path],
    dest: Path,
    *,
    size: int,
    sha256: str,
    on_bytes: Callable[[int, int], None] | None = None,
) -> None:
    """Concatenate `parts` into `dest`, which appears only once its size and sha256 match.

    Raises:
        JoinMismatchError: the parts do not make the expected file (nothing is left behind).
        OSError: the cache folder cannot be written or has no room.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < size:
        raise OSError(f"it needs {size / GIB:.1f} GiB free and {free / GIB:.1f} GiB are")
    digest = hashlib.sha256()
    done = 0
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    done = _copy(src, out, digest, done, size, on_bytes)
                if done > size:
                    break
        got = digest.hexdigest()
        if done != size or got != sha256:
            raise JoinMismatchError(
                f"got {done:,} bytes with sha256 {got[:16]}..., "
                f"expected {size:,} bytes with sha256 {sha256[:16]}..."
            )
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(dest, sha256)


def _copy(
    src: BinaryIO,
    out: BinaryIO | None,
    digest: hashlib._Hash,
    done: int,
    total: int,
    on_bytes: Callable[[int, int], None] | None,
) -> int:
    while chunk := src.read(_CHUNK):
        if out is not None:
            out.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if on_bytes is not None:
            on_bytes(done, total)
        if done > total:
            break
    return done


def hash_file(path: Path, *, on_bytes: Callable[[int, int], None] | None = None) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as src:
        _copy(src, None, digest, 0, path.stat().st_size, on_bytes)
    return digest.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_verified(path: Path, *, size: int, sha256: str) -> bool:
    """Whether `path` was hashed before and has not changed since (by size and mtime)."""
    try:
        stat = path.stat()
        recorded = json.loads(_marker(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and stat.st_size == size
        and recorded.get("sha256") == sha256
        and recorded.get("size") == stat.st_size
        and recorded.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_marker(path: Path, sha256: str) -> None:
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _marker(path).write_text(json.dumps(record) + "\n", encoding="utf-8")
