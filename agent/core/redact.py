"""Scrub credentials out of text we print or store, and make server text safe for a terminal.

`redact` is applied to every error line, batch row, recorded request URI,
recorded response body and debug traceback: servers echo keys back
(`Incorrect API key provided: Bearer sk-…`), and a `--base-url` may carry
them in its userinfo or query string.
"""

from __future__ import annotations

import os
import re

_MARK = "[redacted]"

_PATTERNS = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    # Other vendors' key shapes: Google, GitHub, Slack, Hugging Face, AWS access keys.
    re.compile(
        r"\b(?:AIza[0-9A-Za-z_\-]{30,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9\-]{10,}"
        r"|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b"
    ),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}"),
    re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9._\-]{8,}"),
    # `"api_key": "..."`, `password=...`: a secret-named field in JSON, YAML or a form.
    re.compile(
        r"(?i)((?:api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret|secret[_-]?key"
        r"|password|passwd)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}\]]{4,}"
    ),
)
# scheme://user:password@host → scheme://[redacted]@host
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@")
# ?api_key=…&token=… : query parameters whose names say they hold a secret.
_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:[a-z0-9_\-]*(?:key|token|secret|password|passwd|pwd|auth|signature|sig|"
    r"credential)s?[a-z0-9_\-]*)=)[^&#\s\"'<>]+"
)
# Environment variables whose values are credentials, scrubbed wherever they appear.
_SECRET_ENV = re.compile(r"(?i)(API_KEY|_TOKEN|_SECRET|PASSWORD)$")

# CSI (ESC [ … final), OSC (ESC ] … BEL or ST), other ESC sequences, C0/C1 controls.
_TERMINAL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def _known_secrets() -> list[str]:
    values = [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str) -> str:
    """Text with API keys, bearer tokens, URL credentials and secret query values replaced."""
    for secret in _known_secrets():
        text = text.replace(secret, _MARK)
    # No brackets in a host part: `[x]@host` would parse as an IPv6 literal.
    text = _USERINFO.sub(lambda m: f"{m.group(1)}redacted@", text)
    text = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{_MARK}", text)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + _MARK, text)
    return text


def redact_keys(text: str) -> str:
    """Only keys: the environment's secrets, key-shaped tokens, bearer tokens.

    For model output (recorded response bodies), where a URL with a user in
    it or a `password:` line is the document's content, not our credential.
    """
    for secret in _known_secrets():
        text = text.replace(secret, _MARK)
    for pattern in _PATTERNS[:4]:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + _MARK, text)
    return text


def terminal_safe(text: str) -> str:
    """Text a server or a file supplied, with escape sequences and control characters removed.

    Newlines and tabs stay; anything else could move the cursor, retitle the
    window or hide what came before it on a terminal.
    """
    return _TERMINAL.sub("", text)


def clean(text: str) -> str:
    """`redact` then `terminal_safe`: for any line printed to the user."""
    return terminal_safe(redact(text))
