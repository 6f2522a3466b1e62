"""Record a run's HTTP exchanges with vcrpy, and replay them with no network.

The only module that imports `vcr`. A cassette is vcrpy's YAML file plus a
sidecar `<cassette>.meta.json` saying what produced it (model, template and
prompt versions, the TDD's sha256, the header date, the recorded wall time),
so a replay can reproduce the document byte for byte and a stale cassette is
visible. Secrets are scrubbed at record time: request credentials and every
response header that identifies an account never reach the file. Imports
no other module of `agent.pipeline`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.core.errors import ConfigError, InputError
from agent.core.files import read_text
from agent.core.redact import redact, redact_keys

RecordMode = Literal["new", "once", "append"]

# vcrpy's names for our modes: `new` records a fresh cassette, `once` records
# only when the cassette is missing, `append` adds requests it has not seen.
_VCR_MODES = {"new": "all", "once": "once", "append": "new_episodes", "replay": "none"}

SCRUB_REQUEST_HEADERS = (
    "authorization",
    "x-api-key",
    "cookie",
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
)
_ACCOUNT_HEADER = re.compile(
    r"^(set-cookie|cookie|openai-organization|openai-project|anthropic-organization-id"
    r"|x-request-id|request-id|cf-ray|x-ratelimit-.*|anthropic-ratelimit-.*|x-amz-.*"
    r"|openai-processing-ms|x-envoy-.*|x-kong-.*)$",
    re.IGNORECASE,
)


class CassetteMeta(BaseModel):
    """What produced a cassette; checked before a replay."""

    tool_version: str
    model: str
    template: str
    template_version: str
    # The prompts the recorded calls were made with: a change to another one
    # leaves every request this cassette holds as it was.
    prompts: dict[str, str]
    tdd_sha256: str
    date: str
    base_url: str = ""
    # The structured-output mode the provider used (empty: recorded before it was a setting).
    structured: str = ""
    max_tokens: int | None = None
    recorded_wall_s: float = 0.0
    interactions: int = 0
    # How the run was set up beyond the model, so a replay sends the same requests.
    # Cassettes from before review existed ran without it.
    research: bool = False
    review: Literal["llm", "lint", "off"] = "off"
    max_revisions: int = 1
    # How sections were asked for (cassettes from before it: JSON).
    draft_as: Literal["json", "markdown"] = "json"
    extra: dict[str, str] = Field(default_factory=dict)


def meta_path(cassette: Path) -> Path:
    return cassette.with_name(cassette.name + ".meta.json")


def read_meta(cassette: Path) -> CassetteMeta:
    path = meta_path(cassette)
    if not path.exists():
        raise InputError(
            f"{path} is missing: replay needs the metadata recorded with {cassette.name}"
        )
    try:
        return CassetteMeta.model_validate_json(read_text(path, 1024 * 1024, "cassette metadata"))
    except ValueError as e:
        raise InputError(
            f"{path} is not valid cassette metadata: {str(e).splitlines()[0]}"
        ) from None


def _scrub_request(request: Any) -> Any:
    for name in list(request.headers):
        if name.lower() in SCRUB_REQUEST_HEADERS:
            del request.headers[name]
    # A --base-url may carry credentials: user:password@ or ?api_key=.
    request.uri = redact(request.uri)
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any] | None:
    status = response.get("status", {}).get("code", 200)
    if isinstance(status, int) and status >= 400:
        # Not kept: a replay must not answer with an outage for ever, and error
        # bodies are where servers echo the key they were sent.
        return None
    headers = response.get("headers", {})
    for name in list(headers):
        if _ACCOUNT_HEADER.match(name):
            del headers[name]
    body = response.get("body", {})
    raw = body.get("string")
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", errors="surrogateescape")
        scrubbed = redact_keys(text)
        if scrubbed != text:
            body["string"] = scrubbed.encode("utf-8", errors="surrogateescape")
    elif isinstance(raw, str):
        body["string"] = redact_keys(raw)
    return response


# A cassette of a long research run is a few MB; far larger is not a cassette.
MAX_CASSETTE_BYTES = 64 * 1024 * 1024


def check_cassette(path: Path) -> None:
    """Refuse a cassette that is not a readable vcrpy recording, in one line."""
    # Lazy: vcrpy takes ~0.5 s to import; only runs that record or replay need it.
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    text = read_text(path, MAX_CASSETTE_BYTES, "cassette", remember=True)
    try:
        deserialize(text, yamlserializer)
    except Exception as e:  # vcrpy raises YAML, key and type errors alike
        reason = redact(str(e).splitlines()[0] if str(e) else type(e).__name__)[:160]
        raise InputError(
            f"cassette {path} is not a valid recording ({reason}); re-record it"
        ) from None


def scratch_path(path: Path) -> Path:
    """Where a recording goes until the run succeeds (hidden, beside the cassette)."""
    return path.with_name(f".{path.name}.recording")


def _body(request: Any) -> Any:
    raw = request.body
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _match_body(r1: Any, r2: Any) -> None:
    # Compare parsed JSON, so key order and whitespace never cause a miss.
    if _body(r1) != _body(r2):
        raise AssertionError("request bodies differ")


def _match_path(r1: Any, r2: Any) -> None:
    # Host and port are ignored: a local server gets a new port every run.
    if r1.path.rstrip("/") != r2.path.rstrip("/"):
        raise AssertionError(f"paths differ: {r1.path} != {r2.path}")


@contextmanager
def cassette(path: Path, mode: RecordMode | Literal["replay"]) -> Iterator[Any]:
    """Record into or replay from a cassette for the duration of the block."""
    try:
        # Lazy: vcrpy takes ~0.5 s to import; only runs that record or replay need it.
        import vcr
    except ImportError:  # pragma: no cover - vcrpy is a core dependency
        raise ConfigError("recording needs vcrpy: pip install vcrpy") from None
    if mode == "replay":
        if not path.exists():
            raise InputError(
                f"cassette {path} does not exist; record it first with --record {path}"
            )
        check_cassette(path)
    # Lazy: as `vcr` above (start-up of runs that do not record).
    from vcr.record_mode import RecordMode as VcrMode

    recorder = vcr.VCR(
        record_mode=VcrMode(_VCR_MODES[mode]),
        match_on=["method", "tidsmith_path", "tidsmith_body"],
        before_record_request=_scrub_request,
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("tidsmith_path", _match_path)
    recorder.register_matcher("tidsmith_body", _match_body)
    path.parent.mkdir(parents=True, exist_ok=True)
    with recorder.use_cassette(str(path), allow_playback_repeats=False) as cass:
        yield cass
