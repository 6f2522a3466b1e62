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


def is_unrecorded(error: BaseException) -> bool:
    """True when an error, or what caused it, is a cassette refusing an unrecorded request.

    Checked by name so that provider modules need not import vcrpy.
    """
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if type(seen).__name__ == "CannotOverwriteExistingCassetteException":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unrecorded_error(
    error: BaseException, where: str, prompt_id: str, prompt_version: str
) -> ProviderError | None:
    """The one-line error for a request a replayed cassette lacks, or None if it is not that."""
    if not is_unrecorded(error):
        return None
    return ProviderError(
        f"{where}: this request (prompt {prompt_id} v{prompt_version}) is not in the cassette; "
        "the TDD, template, prompts, model or settings differ from the recording: re-record it"
    )
