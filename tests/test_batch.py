"""`tidsmith batch` on the fake provider and the fault server: limits, resume, budgets, CLI."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.core.errors import InputError
from agent.core.settings import Settings
from agent.core.templates import get_template
from agent.core.tokens import count_tokens
from agent.draft.checkpoint import checkpoint_folder
from agent.pipeline.batch import BatchResult, estimate_batch, find_tdds, run_batch
from agent.providers.openai import OpenAIProvider
from agent.providers.retry import RetryPolicy
from tests.faultserver import Fault, FaultServer

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
NAMES = ["Billing_Export", "Audit_Log", "Rate_Limits", "Webhooks", "Search_Index"]
TEMPLATE = get_template("tid")
SECTIONS = len(TEMPLATE.sections)


def make_tdds(root: Path, count: int) -> Path:
    folder = root / "0xcc" / "tdds"
    folder.mkdir(parents=True)
    text = FIXTURE.read_text(encoding="utf-8")
    for i, name in enumerate(NAMES[:count], 1):
        body = text.replace("Billing Export", name.replace("_", " "))
        (folder / f"{i:03d}_FTDD|{name}.md").write_text(body, encoding="utf-8")
    (folder / "README.md").write_text("# Not a TDD\n\n## Notes\n", encoding="utf-8")
    return folder


def openai_at(server: FaultServer, timeout: float = 5.0) -> OpenAIProvider:
    return OpenAIProvider(
        "gpt-4.1-mini",
        api_key="test",
        base_url=server.base_url,
        timeout=timeout,
        retry=RetryPolicy(max_retries=2, base_s=0.001, cap_s=0.01),
    )


def batch(folder: Path, server: FaultServer, **kw: object) -> BatchResult:
    concurrency = int(kw.pop("concurrency", 4))  # type: ignore[arg-type]

    async def go() -> BatchResult:
        provider = openai_at(server, float(kw.pop("timeout", 5.0)))  # type: ignore[arg-type]
        try:
            return await run_batch(
                find_tdds(folder),
                settings=Settings(
                    concurrency=concurrency, model="openai:gpt-4.1-mini", review="off"
                ),
                template=TEMPLATE,
                provider=provider,
                **kw,  # type: ignore[arg-type]
            )
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_the_default_glob_takes_the_naming_convention_and_falls_back_to_any_markdown(
    tmp_path: Path,
) -> None:
    folder = make_tdds(tmp_path, 2)
    assert [p.name for p in find_tdds(folder)] == [
        "001_FTDD|Billing_Export.md",
        "002_FTDD|Audit_Log.md",
    ]
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "design.md").write_text("# X\n\n## Y\n", encoding="utf-8")
    assert [p.name for p in find_tdds(loose)] == ["design.md"]
    with pytest.raises(InputError, match="--glob"):
        find_tdds(folder, "*.txt")


def test_in_flight_requests_never_exceed_the_limit_across_documents(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path, 4)
    with FaultServer(latency=0.03) as server:
        result = batch(folder, server, concurrency=3)
        assert server.max_in_flight == 3
        assert server.requests == 4 * SECTIONS
    assert [r.status for r in result.rows] == ["done"] * 4
    assert result.exit_code == 0
    # Every section call of a document shares its system message byte for byte.
    assert sorted(server.prefix_hashes.values()) == [SECTIONS] * 4


def test_a_failure_is_isolated_and_a_rerun_requests_only_the_missing_section(
    tmp_path: Path,
) -> None:
    folder = make_tdds(tmp_path, 3)
    broken = TEMPLATE.sections[4].id
    with FaultServer(by_schema={f"section_{broken}": [Fault("400")]}) as server:
        first = batch(folder, server, concurrency=4)
        assert server.requests == 3 * SECTIONS
    statuses = sorted(r.status for r in first.rows)
    assert statuses == ["done", "done", "failed"]
    failed = next(r for r in first.rows if r.status == "failed")
    assert "(HTTP 400" in failed.reason
    assert "\n" not in failed.reason
    assert first.exit_code == 1
    assert failed.output is not None
    assert len(list(checkpoint_folder(Path(failed.output)).glob("*.json"))) == SECTIONS - 1

    with FaultServer() as server:
        second = batch(folder, server, concurrency=4)
        assert server.schema_names == [f"section_{broken}"]
    by_name = {r.name: r for r in second.rows}
    assert by_name[failed.name].status == "done"
    assert by_name[failed.name].resumed == SECTIONS - 1
    assert sum(r.status == "skipped" for r in second.rows) == 2
    assert second.exit_code == 0
    # The finished document's checkpoints are gone: the document is the record now.
    assert not checkpoint_folder(Path(failed.output)).exists()


def test_an_interrupted_batch_resumes_with_only_what_was_left(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path, 3)
    with FaultServer(latency=0.05) as server:

        async def interrupted() -> None:
            provider = openai_at(server)
            task = asyncio.ensure_future(
                run_batch(
                    find_tdds(folder),
                    settings=Settings(concurrency=2, review="off"),
                    template=TEMPLATE,
                    provider=provider,
                )
            )
            await asyncio.sleep(0.4)
            task.cancel()  # what Ctrl-C does to the running batch
            with pytest.raises(asyncio.CancelledError):
                await task
            await provider.aclose()

        asyncio.run(interrupted())
        sent_before = server.requests
    assert 0 < sent_before < 3 * SECTIONS
    written = len(list((folder.parent / "tids").glob("*.md")))
    saved = len(list((folder.parent / "tids" / ".tidsmith" / "checkpoints").glob("*/*.json")))
    with FaultServer() as server:
        result = batch(folder, server, concurrency=2)
        # Only sections neither written in a document nor checkpointed are asked for.
        assert server.requests == 3 * SECTIONS - written * SECTIONS - saved
    assert all(r.status in ("done", "skipped") for r in result.rows)


def test_a_per_document_deadline_bounds_a_stalled_server(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path, 2)
    with FaultServer(faults=[Fault("stall", seconds=10)] * 10) as server:
        result = batch(folder, server, concurrency=2, deadline_s=0.5, timeout=30.0)
    assert [r.status for r in result.rows] == ["failed", "failed"]
    assert all("--deadline 0.5s" in r.reason for r in result.rows)
    assert result.wall_s < 2.0
    assert result.exit_code == 1


def test_max_cost_starts_no_document_past_the_budget_and_finishes_the_one_in_flight(
    tmp_path: Path,
) -> None:
    folder = make_tdds(tmp_path, 3)
    settings = Settings(model="openai:gpt-4.1-mini", review="off")
    each = [e.cost_usd or 0.0 for e in estimate_batch(find_tdds(folder), TEMPLATE, settings)]
    with FaultServer(latency=0.02) as server:
        result = batch(folder, server, concurrency=2, max_cost=each[0] * 1.5)
        assert server.requests == SECTIONS
    assert [r.status for r in result.rows] == ["done", "skipped", "skipped"]
    assert all(r.reason.startswith("budget") for r in result.rows[1:])
    assert result.budget_stopped
    assert result.exit_code == 0


def test_dry_run_estimates_with_tiktoken_and_calls_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_tdds(tmp_path, 2)
    code = main(["batch", str(folder), "--dry-run", "-m", "openai:gpt-4.1-mini"])
    out = capsys.readouterr().out
    assert code == 0
    assert "001_FTDD|Billing_Export" in out and "total" in out
    model = "openai:gpt-4.1-mini"
    estimates = estimate_batch(find_tdds(folder), TEMPLATE, Settings(model=model, review="off"))
    tdd_tokens = count_tokens(FIXTURE.read_text(encoding="utf-8"))
    # Every section call carries the whole TDD; replies are bounded by max_tokens.
    assert all(e.input_tokens > SECTIONS * tdd_tokens for e in estimates)
    assert all(e.output_tokens == SECTIONS * 1800 for e in estimates)
    # The default review (the model judges the checklist, one revision round)
    # can re-draft every section and adds two checklist calls per round.
    reviewed = estimate_batch(find_tdds(folder), TEMPLATE, Settings(model=model))
    checklist = 2 * 2 * 1200
    assert [r.output_tokens for r in reviewed] == [
        2 * e.output_tokens + checklist for e in estimates
    ]
    assert all(
        r.input_tokens > 2 * e.input_tokens for r, e in zip(reviewed, estimates, strict=True)
    )
    assert f"{reviewed[0].input_tokens}" in out
    assert not (folder.parent / "tids").exists()


def test_cli_plain_progress_summary_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_tdds(tmp_path, 2)
    assert main(["batch", str(folder), "-m", "fake", "--concurrency", "3"]) == 0
    captured = capsys.readouterr()
    assert "\x1b[" not in captured.err  # not a terminal: no live view, no colour codes
    lines = captured.err.splitlines()
    assert any(re.match(rf"001_FTDD\|Billing_Export: \w+ {SECTIONS}/{SECTIONS} ", x) for x in lines)
    assert sum(": done (" in x for x in lines) == 2
    assert "done" in captured.out and "002_FTDD|Audit_Log" in captured.out

    # Unchanged TDDs with finished documents are skipped.
    assert main(["batch", str(folder), "-m", "fake", "-q"]) == 0
    assert capsys.readouterr().out.count("up to date") == 2

    # An edited TDD whose document exists is refused without --force, then regenerated.
    tdd = folder / "002_FTDD|Audit_Log.md"
    tdd.write_text(tdd.read_text(encoding="utf-8") + "\n## 3. More\n\nMore.\n", encoding="utf-8")
    assert main(["batch", str(folder), "-m", "fake", "-q"]) == 1
    assert "--force" in capsys.readouterr().out
    assert main(["batch", str(folder), "-m", "fake", "-q", "--force"]) == 0

    # Bad input is exit code 2.
    assert main(["batch", str(tmp_path / "missing"), "-m", "fake"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["batch", str(empty), "-m", "fake"]) == 2
    # A TDD that cannot be loaded fails on its own row: exit code 1.
    (folder / "003_FTDD|Broken.md").write_text("no headings here\n", encoding="utf-8")
    assert main(["batch", str(folder), "-m", "fake", "-q"]) == 1
    assert "Broken" in capsys.readouterr().out


def test_research_and_review_calls_share_the_limit_and_show_as_stages(tmp_path: Path) -> None:
    from agent.pipeline.batch import DocRow
    from research import ResearchConfig

    folder = make_tdds(tmp_path, 3)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "retries.md").write_text(
        "# Retries\n\nBilling exports retry with backoff and a dead-letter queue.\n", "utf-8"
    )
    seen: dict[str, list[str]] = {}

    def on_update(row: DocRow, _event: object) -> None:
        states = seen.setdefault(row.name, [])
        if not states or states[-1] != row.status:
            states.append(row.status)

    async def go() -> BatchResult:
        provider = openai_at(server)
        try:
            return await run_batch(
                find_tdds(folder),
                settings=Settings(
                    concurrency=2, model="openai:gpt-4.1-mini", review="llm", max_revisions=0
                ),
                template=TEMPLATE,
                provider=provider,
                research=ResearchConfig(related=False, docs=[docs]),
                on_update=on_update,
            )
        finally:
            await provider.aclose()

    with FaultServer(latency=0.03) as server:
        result = asyncio.run(go())
        review_calls = server.count("checklist_review")
        research_calls = server.count("research_queries")
        # Research and review calls took slots of the same limit as the sections.
        assert server.max_in_flight == 2
    assert [r.status for r in result.rows] == ["done"] * 3
    assert review_calls >= 3 and research_calls == 3
    for states in seen.values():
        assert states == ["queued", "researching", "drafting", "reviewing", "done"]


def test_batch_slots_serve_first_calls_first_then_arrival_and_skip_cancelled_waits() -> None:
    from agent.pipeline.call_slots import PrioritySemaphore

    async def go() -> list[str]:
        slots = PrioritySemaphore(1)
        order: list[str] = []
        await slots.acquire(1)  # held

        async def call(name: str, priority: int) -> None:
            await slots.acquire(priority)
            order.append(name)
            await asyncio.sleep(0)
            slots.release()

        tasks = [
            asyncio.create_task(call(name, priority))
            for name, priority in [("a1", 1), ("b1", 1), ("gone", 0), ("c0", 0), ("d1", 1)]
        ]
        await asyncio.sleep(0.01)
        tasks[2].cancel()
        await asyncio.sleep(0.01)
        slots.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert slots.free == 1
        return order

    assert asyncio.run(go()) == ["c0", "a1", "b1", "d1"]
