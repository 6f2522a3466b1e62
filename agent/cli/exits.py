"""How the command line ends: exit codes, the one-line error report, and signals.

Imports only light core modules (errors, redaction): it runs for every command,
`--help` included.
"""

from __future__ import annotations

import signal
import sys
import threading

from agent.core.errors import TidsmithError
from agent.core.redact import clean

# Ctrl-C (and SIGTERM, which unwinds the same way): the shell's 128 + SIGINT.
INTERRUPTED = 130


class CouldNotRun(TidsmithError):
    """`review` could not reach a verdict (the model failed): exit 3, not 1."""

    exit_code = 3


def print_spent(error: BaseException) -> None:
    """What a run that did not finish had already spent (its run record holds every call)."""
    record = getattr(error, "run_record", None)
    totals = getattr(record, "totals", None)
    # Nothing billed (embedded, fake and replayed runs): the error line says it all.
    if totals is None or not totals.calls or totals.cost_usd == 0:
        return
    cost = "unknown cost" if totals.cost_usd is None else f"${totals.cost_usd:.4f}"
    print(
        f"tidsmith: spent before stopping: {totals.calls} calls, {totals.input_tokens} input + "
        f"{totals.output_tokens} output tokens, {cost}",
        file=sys.stderr,
    )


def redacted_excepthook(kind: type[BaseException], error: BaseException, tb: object) -> None:
    """TIDSMITH_DEBUG's traceback, with keys and terminal escapes scrubbed like any line."""
    import traceback  # only a debug run's failure needs it; every run imports this module

    text = "".join(traceback.format_exception(kind, error, tb))  # pyright: ignore[reportArgumentType]
    sys.stderr.write(clean(text))


def terminate_cleanly() -> None:
    """Make SIGTERM unwind like Ctrl-C, so servers stop and partial files are removed."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
