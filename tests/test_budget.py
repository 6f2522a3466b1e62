"""Budgets and resumes, counted at a loopback server.

- `batch --max-cost` meters every call as it is made: against a server that
  reports huge usage, spending stops within one call's cost of the cap;
- a batch the budget let do nothing exits non-zero;
- `generate` checkpoints each section, so a run that fails at section 5
  resumes with exactly the missing sections requested.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.core.cost import call_cost
from agent.core.settings import Settings
from agent.core.templates import get_template
from agent.pipeline.batch import find_tdds, run_batch
from agent.providers.base import Reply, Request
from agent.providers.openai import OpenAIProvider
from agent.providers.retry import RetryPolicy
from tests.faultserver import Fault, FaultServer

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
TEMPLATE = get_template("tid")
MODEL = "gpt-4.1-mini"


class Metered:
    """The provider, with the cost of every reply it returned kept in order."""

    def __init__(self, inner: OpenAIProvider) -> None:
        self.inner = inner
        self.name, self.model = inner.name, inner.model
        self.max_concurrency = inner.max_concurrency
        self.context_window = inner.context_window
        self.schema_in_text = inner.schema_in_text
        self.costs: list[float] = []

    async def complete(self, request: Request) -> Reply:
        reply = await self.inner.complete(request)
        self.costs.append(call_cost(self.inner, reply.usage) or 0.0)
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()


def tdds(root: Path, count: int) -> Path:
    folder = root / "0xcc" / "tdds"
    folder.mkdir(parents=True)
    text = FIXTURE.read_text(encoding="utf-8")
    for i, name in enumerate(["Billing_Export", "Audit_Log", "Rate_Limits"][:count], 1):
        body = text.replace("Billing Export", name.replace("_", " "))
        (folder / f"{i:03d}_FTDD|{name}.md").write_text(body, encoding="utf-8")
    return folder


def batch(folder: Path, server: FaultServer, max_cost: float) -> tuple[object, Metered]:
    provider = Metered(
        OpenAIProvider(
            MODEL,
            api_key="test",
            base_url=server.base_url,
            retry=RetryPolicy(max_retries=0, base_s=0.001, cap_s=0.01),
        )
    )

    async def go() -> object:
        try:
            return await run_batch(
                find_tdds(folder),
                settings=Settings(concurrency=1, model=f"openai:{MODEL}", review="off"),
                template=TEMPLATE,
                provider=provider,  # pyright: ignore[reportArgumentType]
                max_cost=max_cost,
            )
        finally:
            await provider.aclose()

    return asyncio.run(go()), provider


def test_max_cost_stops_within_one_call_of_the_cap_when_usage_is_huge(tmp_path: Path) -> None:
    folder = tdds(tmp_path, 2)
    # Usage 200x what was sent: the estimates that admitted the document are far off.
    with FaultServer(usage_scale=200) as server:
        probe, metered = batch(tdds(tmp_path / "probe", 1), server, max_cost=1000.0)
        one_call = max(metered.costs)
        cap = 3.5 * one_call
        result, metered = batch(folder, server, max_cost=cap)

    spent = sum(metered.costs)
    assert spent <= cap + max(metered.costs)
    assert sum(metered.costs[:-1]) < cap  # every call but the last started under the cap
    # No call started once the spend reached the cap: the calls that fit, plus the last.
    assert len(metered.costs) <= int(cap / min(metered.costs)) + 1 <= 8
    rows = result.rows  # type: ignore[attr-defined]
    assert rows[0].status == "failed" and "--max-cost" in rows[0].reason
    assert rows[1].status == "skipped"
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert probe.exit_code == 0  # type: ignore[attr-defined]


def test_a_batch_the_budget_let_do_nothing_exits_non_zero(tmp_path: Path) -> None:
    folder = tdds(tmp_path, 2)
    with FaultServer() as server:
        result, _ = batch(folder, server, max_cost=0.0)
        assert server.requests == 0
    assert [r.status for r in result.rows] == ["skipped", "skipped"]  # type: ignore[attr-defined]
    assert result.exit_code == 1  # type: ignore[attr-defined]


def test_generate_resumes_with_exactly_the_missing_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tdds(tmp_path, 1)
    tdd = next(folder.iterdir())
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("TIDSMITH_CACHE_DIR", str(tmp_path / "cache"))
    args = ["generate", str(tdd), "-m", f"openai:{MODEL}", "--review", "off", "-q"]
    sections = [f"section_{s.id}" for s in TEMPLATE.sections]

    # Section 5 is refused for good: the run fails after 4 sections were paid for.
    with FaultServer(faults=[Fault(), Fault(), Fault(), Fault(), Fault("401")]) as server:
        failed = main([*args, "--base-url", server.base_url, "--concurrency", "1"])
        first = list(server.schema_names)
    assert failed == 1
    assert first[:5] == sections[:5]  # the others still run: each one is saved as it completes
    assert not (folder.parent / "tids" / "001_FTID|Billing_Export.md").exists()

    with FaultServer() as server:
        resumed = main([*args, "--base-url", server.base_url])
        second = sorted(server.schema_names)

    assert resumed == 0
    assert second == [sections[4]]  # exactly the missing one
    assert (folder.parent / "tids" / "001_FTID|Billing_Export.md").exists()
    # Written: the checkpoints are gone.
    assert not (folder.parent / "tids" / ".tidsmith" / "checkpoints").exists() or not any(
        (folder.parent / "tids" / ".tidsmith" / "checkpoints").rglob("*.json")
    )
