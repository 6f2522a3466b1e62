"""A loopback OpenAI-compatible server that injects faults on cue (test utility).

`/v1/chat/completions` on 127.0.0.1 only, in a daemon thread. Each request
takes the next scripted `Fault` (by schema name first, then the shared queue,
else a normal reply after `latency` seconds). A normal reply is a JSON object
valid for the request's `response_format.json_schema.schema`, built with
`sample_instance`. The server counts requests, tracks the most requests in
flight at once and hashes each request's system message (the shared prefix).
It is bounded: it refuses work after `max_requests` and shuts itself down
after `lifetime_s`, so a broken test cannot leave it running.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from agent.core.tokens import count_tokens
from agent.providers.fake import sample_instance
from tests.loopback import LoopbackHandler, LoopbackServer

FaultKind = Literal[
    "ok",
    "429",
    "500",
    "503",
    "529",
    "reset",
    "stall",
    "trickle",
    "truncated",
    "length",
    "refusal",
    "content_filter",
    "quota",
    "400",
    "401",
    "404",
    "empty",
    "unsupported",
]


@dataclass(frozen=True)
class Fault:
    """What one request gets. `retry_after` (seconds) goes in a Retry-After header."""

    kind: FaultKind = "ok"
    retry_after: float | None = None
    # stall: how long to hold the request without answering; trickle: seconds per byte.
    seconds: float = 5.0


_ERRORS: dict[str, tuple[int, str, str]] = {
    "429": (429, "rate_limit_exceeded", "Rate limit reached; try again later."),
    "quota": (429, "insufficient_quota", "You exceeded your current quota."),
    "500": (500, "server_error", "The server had an error."),
    "503": (503, "server_error", "The engine is currently overloaded."),
    "529": (529, "overloaded_error", "Overloaded."),
    "400": (400, "invalid_request_error", "Invalid schema for response_format."),
    "401": (401, "invalid_api_key", "Incorrect API key provided."),
    "404": (
        404,
        "model_not_found",
        "The model `gpt-nope` does not exist or you do not have access to it.",
    ),
    # A compatible server that has no json_schema (llama_cpp.server, older gateways).
    "unsupported": (400, "invalid_request_error", "response_format json_schema is not supported"),
}


class FaultServer(LoopbackServer):
    """Start with `with FaultServer(...) as server:`; `server.base_url` ends in /v1."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: list[Fault] | None = None,
        by_schema: dict[str, list[Fault]] | None = None,
        max_requests: int = 5000,
        lifetime_s: float = 120.0,
        usage_scale: int = 1,
        echo_auth: bool = False,
        error_suffix: str = "",
    ) -> None:
        super().__init__(lifetime_s)
        # Hostile-server knobs: report `usage_scale` times the real tokens; echo the
        # Authorization header (and `error_suffix`) in every error message.
        self.usage_scale = usage_scale
        self.echo_auth = echo_auth
        self.error_suffix = error_suffix
        self.latency = latency
        self._queue = list(faults or [])
        self._by_schema = {k: list(v) for k, v in (by_schema or {}).items()}
        self.max_requests = max_requests
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.schema_names: list[str] = []
        self.prefix_hashes: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def count(self, schema_name: str) -> int:
        """Requests received for one section's schema (`section_<id>`)."""
        return self.schema_names.count(schema_name)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"fault_server": self})

    def _next(self, schema_name: str) -> Fault:
        with self._lock:
            queue = self._by_schema.get(schema_name)
            if queue:
                return queue.pop(0)
            if self._queue:
                return self._queue.pop(0)
        return Fault()


class _Handler(LoopbackHandler):
    fault_server: FaultServer

    def do_POST(self) -> None:
        arrived = time.perf_counter()
        server = self.fault_server
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._error(404, "not_found", f"no route {self.path}")
            return
        response_format = body.get("response_format") or {}
        spec = response_format.get("json_schema") or {}
        schema_name = str(spec.get("name", ""))
        system = next((m["content"] for m in body.get("messages", []) if m["role"] == "system"), "")
        with server._lock:
            server.requests += 1
            if server.requests > server.max_requests or server.closing.is_set():
                over = True
            else:
                over = False
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
                server.schema_names.append(schema_name)
                server.prefix_hashes[hashlib.sha256(system.encode()).hexdigest()[:16]] += 1
                server.bodies.append(body)
                server.times.append(time.perf_counter())
        if over:
            self._error(503, "server_error", "fault server request bound reached")
            return
        try:
            self._answer(server, server._next(schema_name), body, spec, arrived + server.latency)
        finally:
            with server._lock:
                server.in_flight -= 1

    def _answer(
        self,
        server: FaultServer,
        fault: Fault,
        body: dict[str, Any],
        spec: dict[str, Any],
        due: float,
    ) -> None:
        def hold() -> None:
            # `latency` is the whole time to answer, as a model server's would be:
            # building the reply below happens inside it, not after it.
            if (left := due - time.perf_counter()) > 0:
                server.closing.wait(left)

        kind = fault.kind
        if kind not in (
            "ok",
            "length",
            "refusal",
            "content_filter",
            "empty",
            "truncated",
            "trickle",
        ):
            hold()
        if kind in _ERRORS:
            status, code, message = _ERRORS[kind]
            self._error(status, code, message, fault.retry_after)
            return
        if kind == "reset":
            # SO_LINGER 0: close() sends RST, which the client sees as a reset connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if kind == "stall":
            server.closing.wait(fault.seconds)
            self.close_connection = True
            return
        schema = spec.get("schema") or {"type": "object", "properties": {}}
        content: str | None = json.dumps(sample_instance(schema, "fault"))
        finish, refusal = "stop", None
        if kind == "length":
            content, finish = (content or "")[: max(1, len(content or "") // 2)], "length"
        elif kind == "refusal":
            content = None
            refusal = "I'm sorry, I can't help with that request." + server.error_suffix
        elif kind == "content_filter":
            content, finish = None, "content_filter"
        elif kind == "empty":
            content = ""
        prompt = "".join(m["content"] for m in body.get("messages", []))
        payload = {
            "id": f"chatcmpl-fault{server.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fault"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": count_tokens(prompt) * server.usage_scale,
                "completion_tokens": count_tokens(content or refusal or "") * server.usage_scale,
                "total_tokens": 0,
            },
        }
        data = json.dumps(payload).encode()
        if kind == "truncated":
            data = data[: len(data) // 2]
        hold()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if kind == "trickle":
            # Bytes keep arriving, so no read timeout fires; only a wall-clock bound stops it.
            for i in range(len(data)):
                if server.closing.wait(fault.seconds):
                    return
                try:
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                except OSError:
                    return
            return
        self.wfile.write(data)

    def _error(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        server = self.fault_server
        if server.echo_auth:
            message += f" You sent: {self.headers.get('Authorization', '')}"
        message += server.error_suffix
        data = json.dumps(
            {"error": {"message": message, "type": code, "code": code, "param": None}}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # As OpenAI does: every answer names its request, which support can look up.
        self.send_header("x-request-id", f"req_fault{self.fault_server.requests}")
        if retry_after is not None:
            self.send_header("Retry-After", f"{retry_after:g}")
        self.end_headers()
        self.wfile.write(data)
