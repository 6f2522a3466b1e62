"""A reader for the scalar metadata of a GGUF model file (name, architecture, context length).

Pure file parsing: imports nothing of tidsmith.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

# GGUF metadata value types → struct formats (3: strings, 9: arrays, handled apart).
_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_GGUF_STRING = 8
_GGUF_ARRAY = 9


def read_gguf_metadata(path: Path, *, limit: int = 10_000) -> dict[str, object]:
    """The scalar metadata of a GGUF file, read up to its architecture's context length.

    Enough to size the server for any model file without loading llama.cpp;
    stops early because the tokenizer's large arrays come after what is needed.

    Raises:
        ValueError: the file is not GGUF (version 2 or later) or its header is damaged.
    """
    meta: dict[str, object] = {}
    with path.open("rb") as f:

        def read(fmt: str) -> int | float | bool:
            raw = f.read(struct.calcsize(fmt))
            if len(raw) != struct.calcsize(fmt):
                raise ValueError("the header ends early")
            return struct.unpack(fmt, raw)[0]

        def read_str() -> str:
            length = int(read("<Q"))
            if length > 1 << 24:
                raise ValueError("a metadata string is implausibly long")
            return f.read(length).decode("utf-8", errors="replace")

        def read_value(kind: int) -> object:
            if kind in _GGUF_SCALARS:
                return read(_GGUF_SCALARS[kind])
            if kind == _GGUF_STRING:
                return read_str()
            if kind == _GGUF_ARRAY:
                item_kind, count = int(read("<I")), int(read("<Q"))
                if item_kind in _GGUF_SCALARS:
                    f.seek(count * struct.calcsize(_GGUF_SCALARS[item_kind]), os.SEEK_CUR)
                else:
                    for _ in range(count):
                        read_value(item_kind)
                return None
            raise ValueError(f"unknown metadata type {kind}")

        if f.read(4) != b"GGUF":
            raise ValueError("it does not start with the GGUF magic bytes")
        version = int(read("<I"))
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        read("<Q")  # tensor count
        count = int(read("<Q"))
        for _ in range(min(count, limit)):
            key = read_str()
            value = read_value(int(read("<I")))
            if value is not None:
                meta[key] = value
            arch = meta.get("general.architecture")
            if isinstance(arch, str) and f"{arch}.context_length" in meta:
                break
    return meta
