"""The embedded model server process: llama.cpp's own server, from the xllamacpp wheel.

Run as `python -m agent.providers.local.engine --model PATH --alias NAME --port N
...` by agent.providers.local.server, never imported by tidsmith itself: a
llama.cpp crash then ends this process, not the CLI. The only module that
imports xllamacpp.

xllamacpp ships llama.cpp's C++ server (continuous batching, prompt cache,
`usage.prompt_tokens_details.cached_tokens`, GBNF `grammar` and `json_schema`
in the request body) as a prebuilt wheel: nothing compiles on install.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import socket
import sys
import threading
from typing import Any

# llama.cpp's n-gram drafts: they need no second model.
_SPECULATIVE = {
    "none": "COMMON_SPECULATIVE_TYPE_NONE",
    "ngram-simple": "COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE",
    "ngram-map-k": "COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K",
    "ngram-mod": "COMMON_SPECULATIVE_TYPE_NGRAM_MOD",
}


_FLASH_ATTN = {
    "auto": "LLAMA_FLASH_ATTN_TYPE_AUTO",
    "on": "LLAMA_FLASH_ATTN_TYPE_ENABLED",
    "off": "LLAMA_FLASH_ATTN_TYPE_DISABLED",
}
_CACHE_TYPES = {"f16": "GGML_TYPE_F16", "q8_0": "GGML_TYPE_Q8_0"}


def _can_bind(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent.providers.local.engine")
    parser.add_argument("--model", required=True, help="the .gguf file")
    parser.add_argument("--alias", required=True, help="the name /v1/models lists")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx", type=int, required=True, help="context window, all slots")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=1, help="slots (concurrent requests)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument(
        "--speculative",
        choices=sorted(_SPECULATIVE),
        default="none",
        help="draft tokens by n-gram lookup in the prompt and the reply so far (A/B runs)",
    )
    parser.add_argument(
        "--draft-model",
        # Measured on 2026-12-03 with Qwen2.5-Coder-0.5B drafting for 1.5B: 4.0
        # tok/s against 17.2 without (half the drafts accepted; both models
        # share the 2 cores). docs/embedded.md.
        help="a smaller .gguf of the same vocabulary, drafting tokens to check (A/B runs)",
    )
    parser.add_argument("--draft-max", type=int, default=8, help="most tokens drafted at a time")
    parser.add_argument(
        "--flash-attn",
        choices=sorted(_FLASH_ATTN),
        # Off: on this 2-core CPU, at a 4,400-token prompt, flash attention (what
        # auto chose) ran prompts ~25% faster and generation ~25% slower (15.5-16.7
        # against 20.7-22.3 tok/s under the section grammar, two paired runs of
        # benchmarks/embedded.py --engine-only), and a run generates more than
        # it reads uncached. docs/embedded.md has the table.
        default="off",
        help="llama.cpp's flash attention (off by default: faster generation on CPU)",
    )
    parser.add_argument(
        "--cache-type",
        choices=sorted(_CACHE_TYPES),
        default="f16",
        help="the KV cache's element type, keys and values (A/B runs)",
    )
    return parser


def _params(xllamacpp: Any, args: argparse.Namespace) -> Any:
    """llama.cpp's server settings from the command line."""
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    # A set of names: a bare string would be read as a set of its characters.
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    # One KV buffer for all slots: a slot may use the whole window.
    params.kv_unified = True
    params.n_batch = args.batch
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.flash_attn_type = getattr(xllamacpp.llama_flash_attn_type, _FLASH_ATTN[args.flash_attn])
    cache_type = getattr(xllamacpp.ggml_type, _CACHE_TYPES[args.cache_type])
    params.cache_type_k = cache_type
    params.cache_type_v = cache_type
    if args.speculative != "none":
        kind = xllamacpp.common_speculative_type
        params.speculative.types = [getattr(kind, _SPECULATIVE[args.speculative])]
    if args.draft_model:
        draft = params.speculative.draft
        draft.mparams.path = args.draft_model
        draft.n_max = args.draft_max
        draft.cpuparams.n_threads = args.threads
        draft.cpuparams_batch.n_threads = args.threads
        kind = xllamacpp.common_speculative_type
        params.speculative.types = [kind.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
    # A warm-up decode costs seconds on a CPU and buys nothing for a short run.
    params.warmup = False
    return params


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # A compiled module without type stubs: Any, said once here.
    xllamacpp: Any = importlib.import_module("xllamacpp")
    try:
        server = xllamacpp.Server(_params(xllamacpp, args))
    except RuntimeError as e:
        # llama.cpp logs its reason above ("couldn't bind HTTP server socket"); the
        # caller retries another port on "address already in use".
        if not _can_bind(args.host, args.port):
            print(f"tidsmith engine: address already in use: {args.host}:{args.port}", flush=True)
        else:
            print(f"tidsmith engine: llama.cpp did not start: {e}", flush=True)
        return 1
    print(f"tidsmith engine: listening on {server.listening_address}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
