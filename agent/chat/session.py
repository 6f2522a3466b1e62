"""`tidsmith chat` and `tidsmith ask`: the pipeline as a conversation.

A `ChatSession` is a `ChatState` (agent/chat/state.py) that acts on lines:
natural-language lines become an `Intent` (agent/chat/intent.py), slash commands
reach the same actions (agent/chat/commands.py) without the model, and the
terminal loop (agent/chat/terminal.py) feeds it lines. Owns the routing and the
two entry points; imported only by `agent.cli`, it must not import the cli.
"""

from __future__ import annotations

import asyncio
import difflib
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from agent.chat import commands
from agent.chat.commands import COMMANDS
from agent.chat.intent import Intent, interpret, pick_candidate, preparse
from agent.chat.state import ChatState
from agent.chat.terminal import LineReader, PlainReader, TerminalReader, repl
from agent.core.errors import InputError, TidsmithError
from agent.core.settings import Settings
from agent.core.templates import get_template
from agent.pipeline.generate import Document, run_generate
from agent.providers.base import Provider
from research.config import load_research_config

__all__ = ["ChatSession", "ask_once", "run_chat"]


class ChatSession(ChatState):
    """A conversation that acts on each line: a slash command or a request in words."""

    async def handle(self, line: str) -> bool:
        """Act on one line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        try:
            if line.startswith("/"):
                return await self.command(line)
            self.remember(f"user: {line}")
            if await self._answer_pending(line):
                return True
            intent = await self.interpret(line)
            return await self.act(intent)
        except TidsmithError as e:
            # Text, not markup: messages quote user input that may hold [brackets].
            self.console.print(Text.assemble(("error: ", "red"), str(e)))
            return True

    async def _answer_pending(self, line: str) -> bool:
        """True when the line answered the last "which TDD?" and generation ran."""
        pending, self.pending = self.pending, None
        chosen = pick_candidate(line, pending.candidates) if pending else None
        if pending is None or chosen is None:
            return False
        await commands.generate(
            self, str(chosen), template=pending.template, research=pending.research
        )
        return True

    async def interpret(self, text: str) -> Intent:
        """The line's intent; the model is only opened when the pre-parse cannot decide."""
        quick = preparse(text)
        if quick is not None:
            return quick
        with self.status("reading the request"):
            intent, record = await interpret(text, await self.provider(), self.context())
        if record is not None:
            self.session_calls.append(record)
        return intent

    async def act(self, intent: Intent) -> bool:
        """Carry out an intent, whichever way it was reached."""
        action = intent.action
        if action == "generate":
            # A request that asks for research turns it on; one that does not
            # keeps what /research set.
            research = True if intent.research else None
            await commands.generate(self, intent.tdd, template=intent.template, research=research)
        elif action == "revise":
            await commands.revise(self, intent.section, intent.instruction)
        elif action == "review":
            commands.review(self)
        elif action == "save":
            await commands.save(self, intent.value)
        elif action == "set_model":
            await commands.set_model(self, intent.value)
        elif action == "set_template":
            commands.set_template(self, intent.template or intent.value)
        elif action == "show_cost":
            commands.show_cost(self)
        elif action == "show":
            commands.show(self, intent.section)
        elif action == "clarify":
            self.say(intent.question or "Could you say that again with the TDD's file name?")
        else:
            self.say(
                "I can create a TID or Spec from a TDD, revise a section, review, save or show "
                "cost. Try: Please create a TID for Data Export based on 0xcc/tdds/FILE.md "
                "(or /help)."
            )
        return True

    async def command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        name, arg = name.lower(), arg.strip()
        if name not in COMMANDS:
            near = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f"; did you mean {near[0]}?" if near else "; /help lists them"
            self.say(f"unknown command {name}{hint}")
            return True
        if name == "/quit":
            return not await self.ready_to_quit()
        if name == "/help":
            commands.show_help(self)
        elif name == "/load":
            commands.load(self, arg)
        elif name == "/generate":
            await commands.generate(self, arg)
        elif name == "/research":
            commands.set_research(self, arg)
        elif name == "/template":
            commands.set_template(self, arg)
        elif name == "/model":
            await commands.set_model(self, arg)
        elif name == "/show":
            commands.show(self, arg)
        elif name == "/revise":
            section, _, instruction = arg.partition(" ")
            self.remember(f"user: revise {section}: {instruction}")
            await commands.revise(self, section, instruction.strip())
        elif name == "/review":
            commands.review(self)
        elif name == "/diff":
            commands.diff(self)
        elif name == "/undo":
            commands.undo(self)
        elif name == "/save":
            await commands.save(self, arg)
        elif name == "/cost":
            commands.show_cost(self)
        return True


def run_chat(settings: Settings, *, research: bool = False) -> int:
    """`tidsmith chat`: a terminal session, or plain line reading when stdin is not a terminal."""
    console = Console()
    interactive = sys.stdin.isatty() and sys.stdout.isatty()

    async def main() -> int:
        session = ChatSession(settings, console=console, research=research)
        reader: LineReader = TerminalReader(session) if interactive else PlainReader(None, console)
        session.confirm = reader.confirm
        if interactive:
            console.print(
                f"tidsmith chat: template {session.template_name}, model "
                f"{settings.model or 'default'}. Ask for a document, or /help.",
                highlight=False,
            )
        return await repl(session, reader)

    return asyncio.run(main())


async def ask_once(
    text: str,
    settings: Settings,
    *,
    out: Path | None = None,
    force: bool = False,
    research: bool = False,
    console: Console | None = None,
    provider: Provider | None = None,
    cwd: Path | None = None,
) -> Document:
    """`tidsmith ask`: one request that creates a document, written like `generate` writes it."""
    console = console or Console(stderr=True)
    session = ChatSession(settings, console=console, cwd=cwd, research=research, provider=provider)
    try:
        intent = await session.interpret(text)
        if intent.action == "clarify":
            raise InputError(intent.question or "the request is missing something; say which TDD")
        if intent.action != "generate":
            raise InputError(
                f"ask only creates documents (this reads as {intent.action}); "
                "use tidsmith chat for the rest"
            )
        match = session.resolve(intent.tdd)
        if match.path is None:
            raise InputError(match.message)
        name = intent.template or settings.template
        template = get_template(name)
        model = await session.provider()
        with session.progress(
            len(template.sections), f"drafting the {template.doc_kind}"
        ) as progress:
            return await run_generate(
                match.path,
                settings=settings.model_copy(update={"template": name}),
                provider=model,
                template=template,
                out=out,
                force=force,
                write=True,
                on_event=progress,
                research=load_research_config() if research or intent.research else None,
            )
    finally:
        await session.aclose()
