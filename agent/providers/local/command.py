"""The embedded model server's command line and environment (llama-cpp-python or llama-server).

Owns which binary serves a model and with what flags; imports the catalog's
types only, never the running process (agent.providers.local.server).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
from pathlib import Path

from agent.core.errors import ConfigError
from agent.core.settings import user_cache_dir
from agent.providers.local.catalog import GIB, ResolvedModel

HOST = "127.0.0.1"


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
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    built = sorted(user_cache_dir().glob("llama-server/*/bin/llama-server"))
    return built[-1] if built else None


def server_command(model: ResolvedModel, port: int, *, threads: int | None = None) -> list[str]:
    """The command line that serves `model` on 127.0.0.1:`port`."""
    threads = threads or cpu_cores()
    binary = find_llama_server()
    if binary is not None:
        return llama_server_command(binary, model, port, threads=threads)
    return llama_cpp_python_command(model, port, threads=threads)


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
        "--no-ui",
    ]


def llama_cpp_python_command(model: ResolvedModel, port: int, *, threads: int) -> list[str]:
    """`python -m llama_cpp.server` serving `model`: the default, from the `local` extra."""
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
        str(GIB),
    ]


def require_server(extra: str = "local") -> None:
    """Raise ConfigError unless this interpreter can run `python -m llama_cpp.server`."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"the embedded model needs the local extra ({', '.join(missing)} not installed): "
            f"uv sync --extra {extra} (or pip install 'tidsmith[{extra}]')"
        )
