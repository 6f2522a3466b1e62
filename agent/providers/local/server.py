"""The embedded model server process: start it, wait until it answers, watch it, stop it.

Owns process supervision and the server's log; imports the catalog, the
installer and the command line beside it, never an SDK (the server speaks HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from agent.core.errors import ConfigError, ProviderError
from agent.core.settings import user_cache_dir
from agent.providers.local.catalog import GIB, MODELS, ModelEntry, ResolvedModel, model_key
from agent.providers.local.command import (
    HOST,
    find_llama_server,
    free_port,
    require_server,
    server_command,
    server_env,
)
from agent.providers.local.install import resolve_model

log = logging.getLogger(__name__)


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
        # Seen with llama.cpp built natively on AMX CPUs, and with builds for another CPU;
        # the xllamacpp wheel is portable (AVX2), so a llama-server build is the suspect.
        signal.SIGILL: "illegal instruction: the server was built for another CPU; "
        "rebuild it with -DGGML_NATIVE=OFF",
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


_PORT_TAKEN = ("address already in use", "couldn't bind http server socket")


class _PortTakenError(Exception):
    """Someone else bound the port between our check and the server's bind."""


class LocalServer:
    """A llama.cpp OpenAI-compatible server that tidsmith started and will stop.

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
        timeout = ready_timeout if ready_timeout is not None else 60 + 60 * size / GIB
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
                    # The engine's words, and llama-server's own.
                    if any(m in tail.lower() for m in _PORT_TAKEN):
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
            message = f"preparing {label} (first use): {step * 10}% of {total / GIB:.2f} GiB"
            loop.call_soon_threadsafe(say, message)

    return on_bytes
