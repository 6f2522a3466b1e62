"""`tidsmith mcp` end to end: a real stdio subprocess driven by the official `mcp` client."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import TextContent, TextResourceContents

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with one TDD, where the server starts."""
    tdds = tmp_path / "0xcc" / "tdds"
    tdds.mkdir(parents=True)
    shutil.copy(FIXTURE, tdds / FIXTURE.name)
    return tmp_path


def _params(project: Path, delay: float = 0.0) -> StdioServerParameters:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "TIDSMITH_MODEL"}
    }
    env["TIDSMITH_FAKE_DELAY"] = str(delay)
    return StdioServerParameters(
        command=sys.executable, args=["-m", "agent", "mcp"], env=env, cwd=str(project)
    )


def _text(result: Any) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def test_mcp_generate_reports_progress_then_cancels_a_second_call(project: Path) -> None:
    tdd = f"0xcc/tdds/{FIXTURE.name}"
    errlog = project / "server.log"
    events: list[tuple[float, float | None, str | None]] = []
    second_progress: list[str | None] = []
    seen: dict[str, Any] = {}

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    async def run() -> None:
        with errlog.open("w", encoding="utf-8") as log:
            async with (
                stdio_client(_params(project, delay=0.2), errlog=log) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                tools = await session.list_tools()
                seen["tools"] = {t.name for t in tools.tools}
                resources = await session.list_resources()
                seen["resources"] = {str(r.uri) for r in resources.resources}
                spec = await session.read_resource("tidsmith://templates/spec")
                seen["spec_yaml"] = "".join(
                    c.text for c in spec.contents if isinstance(c, TextResourceContents)
                )

                result = await session.call_tool(
                    "generate",
                    {"tdd": tdd, "model": "fake", "review": "lint"},
                    progress_callback=on_progress,
                )
                seen["first"] = result

                # The second call is cancelled once its first section is drafted.
                drafted = anyio.Event()

                async def second(progress: float, total: float | None, message: str | None) -> None:
                    second_progress.append(message)
                    if message and "drafted" in message:
                        drafted.set()

                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        await session.call_tool(
                            "generate",
                            {"tdd": tdd, "model": "fake", "out": "cancelled", "review": "off"},
                            progress_callback=second,
                        )
                        seen["second_finished"] = True

                    tg.start_soon(call)
                    await drafted.wait()
                    tg.cancel_scope.cancel()

                # The server is still serving, and tells errors in one line.
                missing = await session.call_tool("generate", {"tdd": "nope.md", "model": "fake"})
                seen["missing"] = missing

    anyio.run(run)

    assert seen["tools"] >= {"generate", "review", "templates"}
    assert seen["resources"] == {"tidsmith://templates/tid", "tidsmith://templates/spec"}
    assert "name: spec" in seen["spec_yaml"]

    first = seen["first"]
    assert not first.is_error, _text(first)
    out = project / "0xcc" / "tids" / "001_FTID|Billing_Export.md"
    assert first.structured_content["path"] == str(Path("0xcc/tids/001_FTID|Billing_Export.md"))
    assert out.is_file()
    summary = first.structured_content["summary"]
    assert summary["sections"] == 10 and summary["model"] == "fake:fake"
    assert first.structured_content["review"]["template"] == "tid"
    drafted = [m for _d, _t, m in events if m and " drafted (" in m]
    assert len(drafted) == 10, events
    assert [d for d, _t, m in events if m in drafted] == [float(i) for i in range(1, 11)]
    assert {t for _d, t, _m in events} == {10.0}

    assert "second_finished" not in seen
    assert any(m and "drafted" in m for m in second_progress)
    # No document; only the run record of what was spent, marked interrupted.
    assert not list((project / "cancelled").glob("*.md"))
    [record] = (project / "cancelled" / ".tidsmith").glob("*.run.json")
    assert json.loads(record.read_text(encoding="utf-8"))["status"] == "interrupted"

    missing = seen["missing"]
    assert missing.is_error
    message = _text(missing)
    assert "nope.md" in message and "\n" not in message.strip()
    assert "cancelled by the client" in errlog.read_text(encoding="utf-8")


def test_mcp_review_and_templates_tools(project: Path, tmp_path: Path) -> None:
    good = Path(__file__).parent / "fixtures" / "review" / "good_spec.md"
    broken = tmp_path / "broken_SPEC.md"
    broken.write_text("# Spec\n\n## TL;DR\n\nTODO\n", encoding="utf-8")
    seen: dict[str, Any] = {}

    async def run() -> None:
        async with (
            stdio_client(_params(project)) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            seen["good"] = await session.call_tool("review", {"doc": str(good)})
            seen["broken"] = await session.call_tool("review", {"doc": str(broken)})
            seen["templates"] = await session.call_tool("templates", {})
            seen["text"] = await session.call_tool(
                "generate",
                {"tdd_text": FIXTURE.read_text(encoding="utf-8"), "model": "fake", "write": False},
            )
            seen["text_no_out"] = await session.call_tool(
                "generate", {"tdd_text": "# TDD\n\n## 1. A\n\nB.\n", "model": "fake"}
            )

    anyio.run(run)
    assert seen["good"].structured_content["passed"] is True
    assert seen["broken"].structured_content["passed"] is False
    assert seen["broken"].structured_content["errors"] >= 1
    names = [t["name"] for t in seen["templates"].structured_content["templates"]]
    assert names == ["spec", "tid"]
    text = seen["text"].structured_content
    assert text["path"] is None
    assert text["markdown"].startswith("# Technical Implementation Document: Billing Export")
    assert seen["text_no_out"].is_error
    assert "needs out" in _text(seen["text_no_out"])


def test_mcp_check_and_update_tools(project: Path, tmp_path: Path) -> None:
    """check resolves a document's claims; update refuses a hand-written document in one line."""
    root = Path(__file__).parent.parent
    doc = tmp_path / "claims.md"
    doc.write_text(
        "# Notes\n\nThe CLI lives in `agent/cli/main.py` and `agent/no_such_module.py`.\n",
        encoding="utf-8",
    )
    seen: dict[str, Any] = {}

    async def run() -> None:
        async with (
            stdio_client(_params(project)) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = await session.list_tools()
            seen["tools"] = {t.name for t in tools.tools}
            seen["check"] = await session.call_tool(
                "check", {"docs": [str(doc)], "codebase": str(root)}
            )
            seen["update"] = await session.call_tool("update", {"doc": str(doc)})

    anyio.run(run)
    assert {"check", "update"} <= seen["tools"]
    result = seen["check"].structured_content
    assert result["counts"]["found"] >= 1 and result["counts"]["missing"] == 1
    assert any("agent/no_such_module.py" in p for p in result["problems"])
    assert seen["update"].is_error
    assert "update needs a document tidsmith" in _text(seen["update"])
