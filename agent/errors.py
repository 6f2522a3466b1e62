"""The few exception types tidsmith raises on purpose.

Each message is one line a user can act on. The CLI prints it and exits
non-zero; anything else is a bug and keeps its traceback.
"""


class TidsmithError(Exception):
    """Base error: the CLI prints the message as one line and exits 1."""

    exit_code = 1


class InputError(TidsmithError):
    """The TDD (or another input file) cannot be used as given."""

    exit_code = 2


class ConfigError(TidsmithError):
    """Settings, templates, keys or model ids are wrong or missing."""

    exit_code = 2


class ProviderError(TidsmithError):
    """The model provider failed: network, auth, quota, server crash."""


class OutputValidationError(TidsmithError):
    """The model's reply did not validate, even after asking again."""


class RetrievalError(TidsmithError):
    """A research source failed (only raised when research is strict)."""
