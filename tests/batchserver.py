"""A loopback fixture server for the provider batch APIs (test utility, not a vendor).

It speaks the wire format of OpenAI's Batch API (`POST /v1/files` multipart
upload, `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/files/{id}/content`)
and of Anthropic's Message Batches (`POST /v1/messages/batches`, `GET
/v1/messages/batches/{id}`, `GET .../results`), plus the live endpoints
(`POST /v1/chat/completions`, `POST /v1/messages`) so the live run that follows
a provider batch has someone to talk to. Nothing here was recorded from a
vendor: the shapes follow the vendors' API references and the types in the
installed openai and anthropic SDKs, which parse every response.

A batch reports `in_progress` for its first `polls` status requests, then ends
and answers each request by its `outcomes` entry (matched against the end of
the custom_id): "ok" is JSON valid for the request's schema (`sample_instance`),
"invalid" is JSON missing every field, "error" makes the request fail. The
server checks the API key, counts what it receives and is bounded like
`tests.faultserver`: at most `max_requests` requests, `lifetime_s` seconds.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import json
import re
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from agent.providers.fake import sample_instance
from tests.loopback import LoopbackHandler, LoopbackServer

Outcome = Literal["ok", "invalid", "error"]
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass
class FixtureBatch:
    """One submitted batch: its requests (custom_id → body) and how far it has got."""

    id: str
    api: Literal["openai", "anthropic"]
    requests: dict[str, dict[str, Any]]
    polls_left: int
    created: float = field(default_factory=time.time)
    output_file_id: str = ""
    error_file_id: str = ""


class BatchServer(LoopbackServer):
    """Start with `with BatchServer(...) as server:`; OpenAI at `openai_url`, Anthropic at `url`."""

    def __init__(
        self,
        *,
        key: str = "test-key",
        polls: int = 2,
        outcomes: dict[str, Outcome] | None = None,
        fail_batch: str = "",
        max_requests: int = 500,
        lifetime_s: float = 60.0,
    ) -> None:
        super().__init__(lifetime_s)
        self.key = key
        self.polls = polls
        self.outcomes: dict[str, Outcome] = dict(outcomes or {})
        self.fail_batch = fail_batch
        self.max_requests = max_requests
        self.requests = 0
        self.batches: dict[str, FixtureBatch] = {}
        self.files: dict[str, bytes] = {}
        self.uploads = 0
        self.creates = 0
        self.status_checks = 0
        # Live calls: the schema name (OpenAI) or "messages" (Anthropic), and the bodies.
        self.live: list[str] = []
        self.live_bodies: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self._ids = 0

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"batch_server": self})

    def next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}{self._ids:04d}fixture"

    def outcome(self, custom_id: str) -> Outcome:
        for suffix, outcome in self.outcomes.items():
            if custom_id == suffix or custom_id.endswith(f"-{suffix}"):
                return outcome
        return "ok"


def _rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _answer_json(schema: dict[str, Any] | None, outcome: Outcome) -> str:
    if outcome == "invalid":
        return "{}"
    return json.dumps(sample_instance(schema or {"type": "object", "properties": {}}, "batch"))


def _chat_completion(body: dict[str, Any], outcome: Outcome, n: int) -> dict[str, Any]:
    spec = (body.get("response_format") or {}).get("json_schema") or {}
    content = _answer_json(spec.get("schema"), outcome)
    prompt = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
    return {
        "id": f"chatcmpl-fixture{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fixture"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": len(content.split()),
            "total_tokens": prompt + len(content.split()),
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


def _message(params: dict[str, Any], outcome: Outcome, n: int) -> dict[str, Any]:
    schema = ((params.get("output_config") or {}).get("format") or {}).get("schema")
    text = _answer_json(schema, outcome)
    return {
        "id": f"msg_fixture{n}",
        "type": "message",
        "role": "assistant",
        "model": params.get("model", "fixture"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 100,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": len(text.split()),
        },
    }


class _Handler(LoopbackHandler):
    batch_server: BatchServer

    # ---- plumbing ----

    def _admit(self) -> bool:
        server = self.batch_server
        with server._lock:
            server.requests += 1
            over = server.requests > server.max_requests or server.closing.is_set()
            server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        if over:
            self._refuse(503, {"error": {"message": "fixture server request bound reached"}})
            return False
        anthropic = self.path.startswith("/v1/messages")
        # The anthropic SDK sends x-api-key or a bearer token, depending on the call.
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        given = (self.headers.get("x-api-key") or bearer) if anthropic else bearer
        if given != server.key:
            # Real vendors echo part of a wrong key; echoing all of it proves we never print it.
            message = f"Incorrect API key provided: {given}"
            if anthropic:
                body = {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": message},
                }
            else:
                body = {"error": {"message": message, "type": "invalid_request_error"}}
            self._refuse(401, body)
            return False
        return True

    def _refuse(self, status: int, payload: Any) -> None:
        # Read the unread body first: closing a socket with data still unread
        # sends a reset, and the client may see that instead of this answer.
        self._body()
        self.close_connection = True
        self._send(status, payload)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _bad(self, message: str, status: int = 400) -> None:
        if self.path.startswith("/v1/messages"):
            self._send(
                status,
                {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
            )
        else:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

    # ---- routes ----

    def do_POST(self) -> None:
        if not self._admit():
            return
        raw = self._body()
        path = self.path
        if path == "/v1/files":
            self._upload(raw)
        elif path == "/v1/batches":
            self._openai_create(json.loads(raw))
        elif path == "/v1/chat/completions":
            self._openai_live(json.loads(raw))
        elif path == "/v1/messages/batches":
            self._anthropic_create(json.loads(raw))
        elif path == "/v1/messages":
            self._anthropic_live(json.loads(raw))
        else:
            self._bad(f"no route POST {path}", 404)

    def do_GET(self) -> None:
        if not self._admit():
            return
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["v1", "batches"] and len(parts) == 3:
            self._openai_retrieve(parts[2])
        elif parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
            self._file_content(parts[2])
        elif parts[:3] == ["v1", "messages", "batches"] and len(parts) == 4:
            self._anthropic_retrieve(parts[3])
        elif parts[:3] == ["v1", "messages", "batches"] and parts[4:] == ["results"]:
            self._anthropic_results(parts[3])
        else:
            self._bad(f"no route GET {self.path}", 404)

    # ---- OpenAI ----

    def _upload(self, raw: bytes) -> None:
        server = self.batch_server
        head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields: dict[str, tuple[str, bytes]] = {}
        for part in form.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename() or ""
            payload = part.get_payload(decode=True)
            fields[str(name)] = (filename, payload if isinstance(payload, bytes) else b"")
        if fields.get("purpose", ("", b""))[1] != b"batch" or "file" not in fields:
            self._bad("a batch input file needs purpose=batch and a file part")
            return
        filename, data = fields["file"]
        file_id = server.next_id("file-")
        with server._lock:
            server.uploads += 1
            server.files[file_id] = data
        self._send(200, self._file_object(file_id, filename, len(data), "batch"))

    @staticmethod
    def _file_object(file_id: str, filename: str, size: int, purpose: str) -> dict[str, Any]:
        return {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }

    def _openai_create(self, body: dict[str, Any]) -> None:
        server = self.batch_server
        data = server.files.get(str(body.get("input_file_id")))
        if data is None:
            self._bad("input_file_id is not an uploaded file", 404)
            return
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            self._bad("this fixture takes /v1/chat/completions batches with a 24h window")
            return
        requests: dict[str, dict[str, Any]] = {}
        models = set()
        for n, line in enumerate(data.decode().splitlines(), 1):
            item = json.loads(line)
            cid = item.get("custom_id", "")
            ok = (
                isinstance(cid, str)
                and _CUSTOM_ID.match(cid)
                and cid not in requests
                and item.get("method") == "POST"
                and item.get("url") == body["endpoint"]
                and isinstance(item.get("body"), dict)
            )
            if not ok:
                self._bad(f"line {n} of the input file is not a valid batch request")
                return
            requests[cid] = item["body"]
            models.add(item["body"].get("model"))
        if len(models) != 1:
            self._bad("every request in a batch must use the same model")
            return
        batch = FixtureBatch(
            id=server.next_id("batch_"), api="openai", requests=requests, polls_left=server.polls
        )
        with server._lock:
            server.creates += 1
            server.batches[batch.id] = batch
        self._send(200, self._openai_batch(batch, "validating"))

    def _openai_batch(self, batch: FixtureBatch, status: str, done: int = 0) -> dict[str, Any]:
        server = self.batch_server
        total = len(batch.requests)
        failed = sum(server.outcome(c) == "error" for c in batch.requests) if done == total else 0
        errors = None
        if status == "failed":
            errors = {
                "object": "list",
                "data": [{"code": "invalid_request", "message": server.fail_batch, "line": 1}],
            }
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": errors,
            "input_file_id": "file-input",
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id or None,
            "error_file_id": batch.error_file_id or None,
            "created_at": int(batch.created),
            "in_progress_at": int(batch.created),
            "expires_at": int(batch.created) + 86400,
            "completed_at": int(time.time()) if status == "completed" else None,
            "request_counts": {"total": total, "completed": done - failed, "failed": failed},
            "metadata": None,
        }

    def _poll(self, batch_id: str, api: str) -> tuple[FixtureBatch, int] | None:
        """The batch and how many more polls it stays in progress for; counts the poll."""
        server = self.batch_server
        batch = server.batches.get(batch_id)
        if batch is None or batch.api != api:
            self._bad(f"no batch {batch_id}", 404)
            return None
        with server._lock:
            server.status_checks += 1
            polls_left = batch.polls_left
            batch.polls_left = max(0, polls_left - 1)
        return batch, polls_left

    def _openai_retrieve(self, batch_id: str) -> None:
        server = self.batch_server
        polled = self._poll(batch_id, "openai")
        if polled is None:
            return
        batch, polls_left = polled
        total = len(batch.requests)
        if server.fail_batch:
            self._send(200, self._openai_batch(batch, "failed"))
            return
        if polls_left > 0:
            # Progress grows with each poll, short of the total until the batch ends.
            done = total * (server.polls - polls_left) // (server.polls + 1)
            self._send(200, self._openai_batch(batch, "in_progress", done))
            return
        if not batch.output_file_id:
            self._finish_openai(batch)
        self._send(200, self._openai_batch(batch, "completed", total))

    def _finish_openai(self, batch: FixtureBatch) -> None:
        server = self.batch_server
        good: list[str] = []
        bad: list[str] = []
        for n, (cid, body) in enumerate(batch.requests.items(), 1):
            outcome = server.outcome(cid)
            if outcome == "error":
                line = {
                    "id": f"batch_req_{n}",
                    "custom_id": cid,
                    "response": {
                        "status_code": 500,
                        "request_id": f"req_{n}",
                        "body": {"error": {"message": "The server had an error.", "type": "x"}},
                    },
                    "error": None,
                }
                bad.append(json.dumps(line))
                continue
            line = {
                "id": f"batch_req_{n}",
                "custom_id": cid,
                "response": {
                    "status_code": 200,
                    "request_id": f"req_{n}",
                    "body": _chat_completion(body, outcome, n),
                },
                "error": None,
            }
            good.append(json.dumps(line))
        for lines, attr in ((good, "output_file_id"), (bad, "error_file_id")):
            if lines:
                file_id = server.next_id("file-")
                server.files[file_id] = ("\n".join(lines) + "\n").encode()
                setattr(batch, attr, file_id)

    def _file_content(self, file_id: str) -> None:
        data = self.batch_server.files.get(file_id)
        if data is None:
            self._bad(f"no file {file_id}", 404)
            return
        self._send(200, data, "application/octet-stream")

    def _openai_live(self, body: dict[str, Any]) -> None:
        server = self.batch_server
        spec = (body.get("response_format") or {}).get("json_schema") or {}
        with server._lock:
            server.live.append(str(spec.get("name", "")))
            server.live_bodies.append(body)
            n = len(server.live)
        self._send(200, _chat_completion(body, "ok", n))

    # ---- Anthropic ----

    def _anthropic_create(self, body: dict[str, Any]) -> None:
        server = self.batch_server
        requests: dict[str, dict[str, Any]] = {}
        for item in body.get("requests") or []:
            cid = item.get("custom_id", "")
            params = item.get("params")
            if not _CUSTOM_ID.match(str(cid)) or cid in requests or not isinstance(params, dict):
                self._bad(f"request {cid!r}: custom_id must be unique [a-zA-Z0-9_-]{{1,64}}")
                return
            if "model" not in params or "max_tokens" not in params or "messages" not in params:
                self._bad(f"request {cid}: params need model, max_tokens and messages")
                return
            requests[cid] = params
        if not requests:
            self._bad("requests: at least one request is required")
            return
        batch = FixtureBatch(
            id=server.next_id("msgbatch_"),
            api="anthropic",
            requests=requests,
            polls_left=server.polls,
        )
        with server._lock:
            server.creates += 1
            server.batches[batch.id] = batch
        self._send(200, self._anthropic_batch(batch, ended=False))

    def _anthropic_batch(self, batch: FixtureBatch, *, ended: bool) -> dict[str, Any]:
        server = self.batch_server
        outcomes = [server.outcome(c) for c in batch.requests]
        errored = sum(o == "error" for o in outcomes) if ended else 0
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                # Anthropic counts outcomes only once the whole batch has ended.
                "processing": 0 if ended else len(outcomes),
                "succeeded": len(outcomes) - errored if ended else 0,
                "errored": errored,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": _rfc3339(batch.created),
            "expires_at": _rfc3339(batch.created + 86400),
            "ended_at": _rfc3339(time.time()) if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{server.url}/v1/messages/batches/{batch.id}/results"
            if ended
            else None,
        }

    def _anthropic_retrieve(self, batch_id: str) -> None:
        polled = self._poll(batch_id, "anthropic")
        if polled is None:
            return
        batch, polls_left = polled
        self._send(200, self._anthropic_batch(batch, ended=polls_left == 0))

    def _anthropic_results(self, batch_id: str) -> None:
        server = self.batch_server
        batch = server.batches.get(batch_id)
        if batch is None or batch.polls_left > 0:
            self._bad(f"batch {batch_id} has no results yet", 404)
            return
        lines: list[str] = []
        for n, (cid, params) in enumerate(batch.requests.items(), 1):
            outcome = server.outcome(cid)
            if outcome == "error":
                result: dict[str, Any] = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": "api_error", "message": "Internal server error"},
                    },
                }
            else:
                result = {"type": "succeeded", "message": _message(params, outcome, n)}
            lines.append(json.dumps({"custom_id": cid, "result": result}))
        self._send(200, ("\n".join(lines) + "\n").encode(), "application/binary")

    def _anthropic_live(self, params: dict[str, Any]) -> None:
        server = self.batch_server
        with server._lock:
            server.live.append("messages")
            server.live_bodies.append(params)
            n = len(server.live)
        self._send(200, _message(params, "ok", n))
