"""The `tidsmith` entry point: parse the arguments, run the command, turn errors into
one line and an exit code.

`main(argv) -> int` is testable without a subprocess. Errors we raise on
purpose print as one line and exit non-zero; set TIDSMITH_DEBUG=1 to see the
traceback instead. It imports only the parser and light core modules: the
commands import the pipeline, rich and SDKs when they run, so `--help` is fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from argparse import Namespace
from collections.abc import Callable

from agent.cli.exits import INTERRUPTED, print_spent, redacted_excepthook, terminate_cleanly
from agent.cli.parser import build_parser
from agent.core.errors import TidsmithError
from agent.core.redact import clean


def handler(spec: str) -> Callable[[Namespace], int]:
    """The command function a parser entry names as "module:function", imported now.

    Lazy by design: `--help` builds the whole parser, and importing every
    command module (and what each imports) would slow every run down.
    """
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    terminate_cleanly()
    debug = os.environ.get("TIDSMITH_DEBUG") not in (None, "", "0")
    try:
        return int(handler(args.handler)(args))
    except TidsmithError as e:
        if debug:
            # The traceback is printed by the hook, scrubbed: SDK errors quote server bodies.
            sys.excepthook = redacted_excepthook
            raise
        print(f"tidsmith: error: {clean(str(e))}", file=sys.stderr)
        print_spent(e)
        return e.exit_code
    except OSError as e:
        if e.filename is None or debug:
            raise  # not about a path the user gave: a bug, with its traceback
        # A path the user gave that no check above caught: still one line, exit 2.
        # Lazy: only an error needs the file-error wording.
        from agent.core.files import os_error

        print(f"tidsmith: error: {clean(str(os_error(e.filename, e)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("tidsmith: interrupted; no document was written", file=sys.stderr)
        print_spent(e)
        return INTERRUPTED


def run() -> None:
    sys.exit(main())
