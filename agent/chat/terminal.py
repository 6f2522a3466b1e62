"""The chat's terminal loop: line readers, Tab completion, Ctrl-C routing and the REPL.

Lines come from prompt_toolkit in a terminal or from plain stdin in scripts; each
step runs as its own asyncio task so Ctrl-C cancels the step, not the session.
Must not import `agent.chat.session` (which imports this); of the commands it
knows only their table, for completion.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from agent.chat.commands import COMMANDS
from agent.chat.state import ChatState
from agent.core.templates import builtin_names


class LineReader(Protocol):
    """Where lines come from: a prompt_toolkit session, or plain stdin for scripts."""

    async def read(self, prompt: str) -> str:
        """The next line; EOFError at the end, KeyboardInterrupt on Ctrl-C at the prompt."""
        ...

    async def confirm(self, question: str) -> bool: ...


class Session(Protocol):
    """What the loop drives: one line at a time, and the question before leaving."""

    console: Console

    @property
    def dirty(self) -> bool: ...

    async def handle(self, line: str) -> bool: ...

    async def ready_to_quit(self) -> bool: ...

    async def aclose(self) -> None: ...


class PlainReader:
    """Lines from a stream that is not a terminal: scriptable, no prompts echoed."""

    def __init__(self, stream: Any = None, console: Console | None = None) -> None:
        self.stream = stream or sys.stdin
        self.console = console or Console()

    async def read(self, prompt: str) -> str:
        line = self.stream.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    async def confirm(self, question: str) -> bool:
        self.console.print(f"{question} [y/N]", highlight=False, markup=False)
        try:
            answer = await self.read("")
        except EOFError:
            return False
        return answer.strip().lower() in {"y", "yes"}


def data_dir(env: dict[str, str] | None = None) -> Path:
    """The per-user folder for tidsmith's own state (chat history)."""
    env = dict(os.environ) if env is None else env
    if env.get("TIDSMITH_DATA_DIR"):
        return Path(env["TIDSMITH_DATA_DIR"])
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tidsmith"


class TerminalReader:
    """prompt_toolkit: history across sessions, Esc+Enter for a new line, Tab completion."""

    def __init__(self, state: ChatState, history: Path | None = None) -> None:
        # Lazy: prompt_toolkit is only needed in a terminal, not by `tidsmith ask` or scripts.
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.key_binding import KeyBindings

        history = history or data_dir() / "chat_history"
        history.parent.mkdir(parents=True, exist_ok=True)
        keys = KeyBindings()

        @keys.add("escape", "enter")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        self._prompt: PromptSession[str] = PromptSession(
            history=FileHistory(str(history)),
            completer=command_completer(state),
            key_bindings=keys,
            complete_while_typing=False,
        )
        self._yes_no: PromptSession[str] = PromptSession()

    async def read(self, prompt: str) -> str:
        return await self._prompt.prompt_async(prompt)

    async def confirm(self, question: str) -> bool:
        try:
            answer = await self._yes_no.prompt_async(f"{question} [y/N] ")
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in {"y", "yes"}


def command_completer(state: ChatState) -> Any:
    """Tab completion: command names, their fixed arguments, section numbers, file paths."""
    # Lazy: prompt_toolkit is only needed in a terminal, not by `tidsmith ask` or scripts.
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document as PtDocument

    paths = PathCompleter(expanduser=True)

    class ChatCompleter(Completer):
        def get_completions(self, document: PtDocument, complete_event: Any) -> Iterator[Any]:
            text = document.text_before_cursor
            if text.startswith("/") and " " not in text:
                for name, (args, help_text) in COMMANDS.items():
                    if name.startswith(text.lower()):
                        yield Completion(
                            name, -len(text), display_meta=f"{args} {help_text}".strip()
                        )
                return
            command, _, arg = text.partition(" ")
            choices: list[str] = []
            if command == "/template":
                choices = builtin_names()
            elif command == "/research":
                choices = ["on", "off"]
            elif command in {"/show", "/revise"} and " " not in arg and state.current:
                t = state.current.template
                choices = [str(t.number(s.id) or s.id) for s in t.sections]
            if choices:
                for choice in choices:
                    if choice.startswith(arg):
                        yield Completion(choice, -len(arg))
                return
            # A file path: the argument of /load and /save, or a word with a / in it.
            word = arg if command in {"/load", "/save"} else text.split(" ")[-1]
            if command in {"/load", "/save"} or "/" in word or word.startswith("0xcc"):
                yield from paths.get_completions(PtDocument(word, len(word)), complete_event)

    return ChatCompleter()


async def run_step(coro: Coroutine[Any, Any, bool], console: Console) -> bool:
    """Run one step as a task that Ctrl-C (SIGINT) cancels; the session goes on."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)

    def cancel() -> None:
        loop.call_soon_threadsafe(task.cancel)

    restore = _on_sigint(cancel)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the session itself is being cancelled, not just this step
        console.print("cancelled; the document is as it was before this step", highlight=False)
        return True
    finally:
        restore()


def _on_sigint(callback: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT to `callback` until the returned function is called."""
    try:
        previous = signal.signal(signal.SIGINT, lambda _s, _f: callback())
    except ValueError:  # not the main thread: Ctrl-C cannot be routed here
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore


async def repl(session: Session, reader: LineReader, *, prompt: str = "tidsmith> ") -> int:
    """Read lines and act on them until /quit or end of input."""
    debug = os.environ.get("TIDSMITH_DEBUG") not in (None, "", "0")
    at_end = False
    try:
        while True:
            try:
                line = await reader.read(prompt)
                # A trailing backslash continues the request on the next line.
                while line.endswith("\\"):
                    line = line[:-1] + "\n" + await reader.read("... ")
                at_end = False
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line, as in a shell
            except EOFError:
                # Asked once; a second end of input (Ctrl-D again, a script's end) leaves.
                if at_end or await session.ready_to_quit():
                    if session.dirty:
                        session.console.print("left without saving the document")
                    break
                at_end = True
                continue
            try:
                if not await run_step(session.handle(line), session.console):
                    break
            except Exception:
                # A bug: show it, but keep the unsaved document the user is working on.
                if debug:
                    raise
                session.console.print_exception()
    finally:
        await session.aclose()
    return 0
