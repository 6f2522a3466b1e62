"""Keys never leave the process: not in files, cassettes, metadata, the cache, or any output line.

A hostile (or just careless) server echoes the key it was sent in its error
bodies; a `--base-url` may carry credentials in its userinfo or query string;
TIDSMITH_DEBUG prints tracebacks. Each case runs the real command in a
subprocess against a loopback server, then every file under the run's folder
(outputs, cassettes, `.meta.json`, the cache) and every output line is searched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faultserver import Fault, FaultServer

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-0123456789abcdefSECRETKEY"
USER_PASSWORD = "pw-userinfo-SECRET-5150"
QUERY_TOKEN = "qtoken-SECRET-8086"
SECRETS = (KEY, USER_PASSWORD, QUERY_TOKEN)


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TIDSMITH_CACHE_DIR": str(cwd / "cache"),
        "OPENAI_API_KEY": KEY,
        "ANTHROPIC_API_KEY": "",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def tdd(tmp: Path) -> Path:
    folder = tmp / "0xcc" / "tdds"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FIXTURE.name
    path.write_bytes(FIXTURE.read_bytes())
    return path


def leaks(tmp: Path, out: subprocess.CompletedProcess[str]) -> list[str]:
    """Where any secret appears: file paths under tmp, and 'stdout'/'stderr'."""
    found = [
        str(p.relative_to(tmp))
        for p in tmp.rglob("*")
        if p.is_file() and any(s.encode() in p.read_bytes() for s in SECRETS)
    ]
    found += [
        name
        for name, text in (("stdout", out.stdout), ("stderr", out.stderr))
        if any(s in text for s in SECRETS)
    ]
    return found


def generate(server: FaultServer, tmp: Path, *extra: str, base_url: str | None = None) -> list[str]:
    return [
        "generate",
        str(tdd(tmp)),
        "-m",
        "openai:gpt-4.1-mini",
        "--base-url",
        base_url or server.base_url,
        "--review",
        "off",
        "--timeout",
        "10",
        *extra,
    ]


@pytest.mark.parametrize("mode", ["new", "once", "append"])
def test_a_failed_recording_leaves_no_cassette_and_no_key(tmp_path: Path, mode: str) -> None:
    tape = tmp_path / "tape.yaml"
    with FaultServer(faults=[Fault("401")] * 20, echo_auth=True) as server:
        out = run(
            generate(server, tmp_path, "--record", str(tape), "--record-mode", mode), tmp_path
        )

    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not tape.exists() and not list(tmp_path.glob(".tape.yaml*"))
    assert leaks(tmp_path, out) == []


def test_a_recording_keeps_no_error_response_and_no_echoed_key(tmp_path: Path) -> None:
    tape = tmp_path / "tape.yaml"
    # The first call fails with a body that quotes the key; the retry succeeds.
    with FaultServer(faults=[Fault("500")], echo_auth=True) as server:
        out = run(generate(server, tmp_path, "--record", str(tape)), tmp_path)

    assert out.returncode == 0, out.stderr
    text = tape.read_text(encoding="utf-8")
    assert "code: 500" not in text and "server_error" not in text
    assert leaks(tmp_path, out) == []


def test_base_url_credentials_reach_no_line_record_cassette_or_metadata(tmp_path: Path) -> None:
    tape = tmp_path / "tape.yaml"
    with FaultServer(faults=[Fault("401")] * 20, echo_auth=True) as server:
        host = server.base_url.removeprefix("http://")
        url = f"http://admin:{USER_PASSWORD}@{host}?api_key={QUERY_TOKEN}"
        failed = run(generate(server, tmp_path, base_url=url), tmp_path)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    assert leaks(tmp_path, failed) == []

    with FaultServer() as server:
        host = server.base_url.removeprefix("http://")
        url = f"http://admin:{USER_PASSWORD}@{host}"
        out = run(
            generate(server, tmp_path, "--record", str(tape), "--force", base_url=url), tmp_path
        )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "tape.yaml.meta.json").exists()
    assert leaks(tmp_path, out) == []


def test_debug_tracebacks_are_redacted(tmp_path: Path) -> None:
    with FaultServer(faults=[Fault("401")] * 20, echo_auth=True) as server:
        out = run(generate(server, tmp_path), tmp_path, TIDSMITH_DEBUG="1")

    assert out.returncode != 0
    assert "Traceback" in out.stderr  # debug mode does show it...
    assert "[redacted]" in out.stderr  # ...with the echoed key scrubbed
    assert leaks(tmp_path, out) == []


def test_terminal_escapes_from_a_server_never_reach_stderr(tmp_path: Path) -> None:
    hostile = " \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m"
    with FaultServer(faults=[Fault("refusal")] * 20, error_suffix=hostile) as server:
        out = run(generate(server, tmp_path), tmp_path)

    assert out.returncode != 0
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr
    assert "red" in out.stderr


def test_batch_rows_carry_no_key(tmp_path: Path) -> None:
    folder = tdd(tmp_path).parent
    with FaultServer(faults=[Fault("401")] * 20, echo_auth=True) as server:
        host = server.base_url.removeprefix("http://")
        url = f"http://admin:{USER_PASSWORD}@{host}"
        out = run(
            [
                "batch",
                str(folder),
                "-m",
                "openai:gpt-4.1-mini",
                "--base-url",
                url,
                "--review",
                "off",
                "--timeout",
                "10",
            ],
            tmp_path,
        )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "failed" in out.stdout
    assert leaks(tmp_path, out) == []
