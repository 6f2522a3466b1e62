"""The embedded models, served out of process by llama.cpp's own OpenAI-compatible server.

`local` runs a small GGUF model with no key and no network. tidsmith never
loads llama.cpp itself: it starts `python -m agent.providers.local.engine`
(llama.cpp's C++ server from the prebuilt xllamacpp wheel) on a free loopback
port and speaks OpenAI-compatible HTTP to it. A llama.cpp crash then becomes a
ProviderError instead of a dead CLI, and local runs are recorded like any
other HTTP.

Model ids: `local` (= `local:qwen-1.5b`), `local:qwen-0.5b`, `local:smollm2`,
`local:/path/to/any.gguf`. The Qwen models ship as raw slices in data-only
wheels; the first run joins them into the user cache and checks the sha256.

Modules: `catalog` (the models by name, what an id resolves to), `install`
(finding or joining a model's file), `gguf` (a model file's metadata),
`command` (the server's command line), `server` (the server process),
`engine` (the server process's own entry point, the only module that imports
xllamacpp, and only in that process). This package imports agent.core only,
never another provider or an SDK.
"""

from __future__ import annotations

from agent.providers.local.catalog import (
    DEFAULT_MODEL,
    MAX_CONTEXT,
    MODELS,
    QWEN_LICENSE,
    ModelEntry,
    ResolvedModel,
    chars_per_token,
    model_key,
    models_dir,
    replay_identity,
)
from agent.providers.local.command import (
    HOST,
    cpu_cores,
    find_llama_server,
    free_port,
    require_server,
    server_command,
    server_env,
)
from agent.providers.local.gguf import read_gguf_metadata
from agent.providers.local.install import (
    JoinMismatchError,
    ensure_joined,
    find_parts,
    hash_file,
    is_verified,
    join_parts,
    resolve_model,
)
from agent.providers.local.server import LocalServer, describe_exit, log_tail

__all__ = [
    "DEFAULT_MODEL",
    "HOST",
    "MAX_CONTEXT",
    "MODELS",
    "QWEN_LICENSE",
    "JoinMismatchError",
    "LocalServer",
    "ModelEntry",
    "ResolvedModel",
    "chars_per_token",
    "cpu_cores",
    "describe_exit",
    "ensure_joined",
    "find_llama_server",
    "find_parts",
    "free_port",
    "hash_file",
    "is_verified",
    "join_parts",
    "log_tail",
    "model_key",
    "models_dir",
    "read_gguf_metadata",
    "replay_identity",
    "require_server",
    "resolve_model",
    "server_command",
    "server_env",
]
