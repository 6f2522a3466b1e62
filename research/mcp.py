"""Any MCP server's search tool, over stdio, through the official `mcp` 2.x client.

The server is started for one search (all queries in one session) and
stopped after it. Each query is one `tools/call` with the query text in the
configured argument; start-up and every call are bounded by the server's
timeout. Whatever goes wrong (no such command, a crash, a timeout, an error
result) becomes one RetrievalError naming the server.

This research source imports only agent.core and research.base; never
agent.mcp_server (tidsmith's own MCP server, a front end) or agent.providers.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from typing import TextIO

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ResourceLink, TextContent

from agent.core.errors import RetrievalError
from agent.core.tokens import truncate_tokens
from research.base import McpServer, Passage, Query

MAX_RESULT_TOKENS = 600


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside anyio's task-group ExceptionGroups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _last_line(log: TextIO) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


class McpSource:
    """One configured MCP server; its tool is called once per query."""

    kind = "mcp"

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.name = server.name

    def fingerprint(self) -> str:
        # Environment values are left out: they are often keys, and keys never
        # reach a file, even hashed. What the server returns for a query can
        # still change between runs; rerun without the cache to refresh it.
        s = self.server
        shape = [s.command, s.args, s.tool, s.query_arg, sorted(s.env)]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()

    async def search(self, queries: list[Query], limit: int) -> list[Passage]:
        s = self.server
        params = StdioServerParameters(command=s.command, args=s.args, env=s.env or None)
        # The server's stderr goes to a scratch file, not the user's terminal;
        # its last line explains a crash.
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
            try:
                return await self._session(params, queries, limit, log)
            except RetrievalError:
                raise
            except (OSError, TimeoutError, MCPError, RuntimeError, BaseExceptionGroup) as e:
                leaf = _leaf(e)
                raise RetrievalError(self._describe(leaf, _last_line(log))) from e

    def _describe(self, error: BaseException, stderr: str) -> str:
        s = self.server
        where = f"MCP server {s.name!r}"
        if isinstance(error, FileNotFoundError):
            return f"{where}: command {s.command!r} not found; check [[research.mcp]] command"
        if isinstance(error, TimeoutError):
            return f"{where} did not answer within {s.timeout:g} s"
        said = f" (its last words: {stderr})" if stderr else ""
        if isinstance(error, MCPError):
            return f"{where} failed: {error.message}{said}"
        return f"{where} failed: {type(error).__name__}: {error}{said}"

    async def _session(
        self, params: StdioServerParameters, queries: list[Query], limit: int, log: TextIO
    ) -> list[Passage]:
        s = self.server
        passages: list[Passage] = []
        async with (
            stdio_client(params, errlog=log) as (read, write),
            ClientSession(read, write) as session,
        ):
            with anyio.fail_after(s.timeout):
                await session.initialize()
                tools = await session.list_tools()
            names = [t.name for t in tools.tools]
            if s.tool not in names:
                raise RetrievalError(
                    f"MCP server {s.name!r} has no tool {s.tool!r} (it has: "
                    f"{', '.join(names) or 'none'}); fix [[research.mcp]] tool"
                )
            for query in queries:
                with anyio.fail_after(s.timeout):
                    result = await session.call_tool(s.tool, {s.query_arg: query.text})
                passages.extend(self._passages(result, query)[:limit])
        return passages

    def _passages(self, result: CallToolResult, query: Query) -> list[Passage]:
        s = self.server
        if result.is_error:
            text = " ".join(b.text for b in result.content if isinstance(b, TextContent))
            raise RetrievalError(
                f"MCP server {s.name!r}: tool {s.tool!r} returned an error: {text[:200]}"
            )
        passages: list[Passage] = []
        qkey = hashlib.sha256(query.text.encode()).hexdigest()[:8]
        for i, block in enumerate(result.content):
            if isinstance(block, TextContent) and block.text.strip():
                text = truncate_tokens(block.text.strip(), MAX_RESULT_TOKENS)
                first = text.splitlines()[0].lstrip("# ").strip()[:80]
                location = f"mcp://{s.name}/{s.tool}?{s.query_arg}={query.text}"
            elif isinstance(block, ResourceLink):
                text = f"{block.name}: {block.description or ''}".strip(": ")
                first, location = block.name, str(block.uri)
            else:
                continue
            passages.append(
                Passage(
                    source_id=f"mcp:{s.name}:{qkey}:{i + 1}",
                    kind=self.kind,
                    title=f"{s.name}: {first}",
                    location=location,
                    text=text,
                    score=float(len(result.content) - i),
                )
            )
        return passages
