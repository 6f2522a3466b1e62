"""The commands that hand over to another front end: `chat` and `ask` (the chat
session) and `mcp` (the MCP server).

Imported at `--help` time (through the parser), so the chat session and the MCP
server (and their SDKs) are imported inside the commands, when they run.
"""

from __future__ import annotations

import argparse
import sys

from agent.cli.common import run_async, settings_from


def cmd_mcp(args: argparse.Namespace) -> int:
    # Lazy: the MCP SDK and the pipeline load only when the server runs.
    from agent.mcp_server import serve

    serve()
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    # Lazy: the chat session (pipeline, prompt toolkit) loads only for `chat`.
    from agent.chat.session import run_chat

    return run_chat(settings_from(args), research=args.research)


def cmd_ask(args: argparse.Namespace) -> int:
    # Lazy: the chat session and the pipeline load only for `ask`.
    from agent.chat.session import ask_once
    from agent.pipeline.summary import dumps, generate_summary

    doc = run_async(
        ask_once(
            args.request,
            settings_from(args),
            out=args.out,
            force=args.force,
            research=args.research,
        )
    )
    if args.json:
        sys.stdout.write(dumps(generate_summary(doc)))
        return 0
    t = doc.record.totals
    cost = "unknown price" if t.cost_usd is None else f"${t.cost_usd:.4f}"
    print(
        f"wrote {doc.path} ({len(doc.sections)} sections, {t.calls} calls, "
        f"{t.input_tokens} input + {t.output_tokens} output tokens, {cost}; "
        f"model {doc.record.model})"
    )
    return 0
