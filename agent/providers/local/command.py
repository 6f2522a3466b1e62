"""The embedded model server's command line and environment (xllamacpp's or llama-server).

Owns which binary serves a model and with what flags; imports the catalog's
types only, never the running process (agent.providers.local.server).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import sys
from pathlib import Path

from agent.core.errors import ConfigError
from agent.core.settings import user_cache_dir
from agent.providers.local.catalog import ResolvedModel

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# llama-server takes a setting from LLAMA_ARG_<FLAG> when its command line does
# not give it, and its API key from LLAMA_API_KEY: a stray LLAMA_ARG_N_PARALLEL or
# LLAMA_API_KEY in the user's shell would resize or lock the server tidsmith talks to.
_SERVER_ENV_PREFIXES = ("LLAMA_ARG_", "LLAMA_API_KEY")
# What `python -m agent.providers.local.engine` imports (the `local` extra).
_SERVER_MODULES = ("xllamacpp",)


def server_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ours without anything llama.cpp would read as a setting."""
    environ = dict(os.environ) if environ is None else environ
    env = {k: v for k, v in environ.items() if not k.upper().startswith(_SERVER_ENV_PREFIXES)}
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
    build. Not the default: the xllamacpp wheel of the `local` extra holds the
    same server and installs in seconds, while llama-server is a separate
    CMake build (~6 minutes portable on 2 idle cores; with every CPU variant,
    36 minutes on 2 cores busy with another run); scripts/record-cassettes uses
    it for its process-wide grammar and its Anthropic endpoint.
    """
    if os.environ.get("TIDSMITH_LOCAL_SERVER") != "llama-server":
        return None
    configured = os.environ.get("LLAMA_SERVER")
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    built = sorted(user_cache_dir().glob("llama-server/*/bin/llama-server"), key=_build_rank)
    return built[-1] if built else None


def _build_rank(binary: Path) -> tuple[bool, tuple[int, ...]]:
    """A build with every CPU variant (`--cpu-variants`) first: it loads the variant
    this CPU can run, AVX-512 where there is AVX-512. Then the newest version
    (0.3.100 after 0.3.36), from the cache folder's name."""
    name = binary.parent.parent.name
    version = name.removesuffix("-cpu-variants")
    numbers = tuple(int(n) for n in re.findall(r"\d+", version))
    return name.endswith("-cpu-variants"), numbers


def server_command(model: ResolvedModel, port: int, *, threads: int | None = None) -> list[str]:
    """The command line that serves `model` on 127.0.0.1:`port`."""
    threads = threads or cpu_cores()
    binary = find_llama_server()
    if binary is not None:
        return llama_server_command(binary, model, port, threads=threads)
    return engine_command(model, port, threads=threads)


def engine_command(model: ResolvedModel, port: int, *, threads: int) -> list[str]:
    """llama.cpp's server from the xllamacpp wheel: the default, from the `local` extra.

    One slot: parallel slots do not share the prompt prefix (each evaluates the
    whole TDD again), which on a CPU costs more than two streams gain.
    """
    return [
        sys.executable,
        "-m",
        "agent.providers.local.engine",
        "--model",
        str(model.path),
        "--alias",
        model.name,
        "--host",
        HOST,
        "--port",
        str(port),
        "--ctx",
        str(model.context_window),
        "--threads",
        str(threads),
    ]


def llama_server_command(
    binary: Path, model: ResolvedModel, port: int, *, threads: int
) -> list[str]:
    """llama.cpp's own `llama-server` serving `model` (TIDSMITH_LOCAL_SERVER=llama-server)."""
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
        # As the engine: faster generation on a CPU (docs/embedded.md).
        "--flash-attn",
        "off",
        "--no-ui",
    ]


def require_server(extra: str = "local") -> None:
    """Raise ConfigError unless this interpreter can run the embedded model server."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"the embedded model needs the local extra ({', '.join(missing)} not installed): "
            f"uv sync --extra {extra} (or pip install 'tidsmith[{extra}]')"
        )
