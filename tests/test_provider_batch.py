"""`tidsmith batch --provider-batch` against the loopback fixture server (tests/batchserver.py).

The fixture speaks OpenAI's Batch API and Anthropic's Message Batches and is
driven through the real SDKs; it is not a recording of either vendor.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.cli.main import main
from agent.core.cost import call_cost
from agent.core.errors import ConfigError, InputError, ProviderError
from agent.core.paths import run_record_path
from agent.core.records import RunRecord, Usage
from agent.core.settings import Settings
from agent.core.templates import get_template
from agent.draft.checkpoint import checkpoint_folder
from agent.pipeline.batch import BatchResult, find_tdds, run_batch
from agent.pipeline.provider_batch import (
    BatchPending,
    ProviderBatchResult,
    documents_to_draft,
    interrupted_message,
    run_provider_batch,
    state_file,
)
from agent.providers.anthropic import AnthropicProvider
from agent.providers.base import Provider
from agent.providers.fake import FakeProvider
from agent.providers.openai import OpenAIProvider
from agent.providers.retry import RetryPolicy
from tests.batchserver import BatchServer, Outcome

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
KEY = "sk-test-batchfixture-0123456789abcdef"
TEMPLATE = get_template("tid")
SECTIONS = [s.id for s in TEMPLATE.sections]
FAST = RetryPolicy(max_retries=1, base_s=0.001, cap_s=0.01)
SETTINGS = Settings(model="openai:gpt-4.1-mini", review="off", concurrency=4)


def make_tdds(root: Path, names: tuple[str, ...] = ("Billing_Export", "Audit_Log")) -> Path:
    folder = root / "0xcc" / "tdds"
    folder.mkdir(parents=True)
    text = FIXTURE.read_text(encoding="utf-8")
    for i, name in enumerate(names, 1):
        body = text.replace("Billing Export", name.replace("_", " "))
        (folder / f"{i:03d}_FTDD|{name}.md").write_text(body, encoding="utf-8")
    return folder


def openai_at(server: BatchServer, key: str = KEY) -> OpenAIProvider:
    return OpenAIProvider("gpt-4.1-mini", api_key=key, base_url=server.openai_url, retry=FAST)


def anthropic_at(server: BatchServer, key: str = KEY) -> AnthropicProvider:
    # Native structured output, as against api.anthropic.com, so output_config travels.
    return AnthropicProvider(
        "claude-sonnet-4-6", api_key=key, base_url=server.url, structured="native", retry=FAST
    )


def prefill(
    folder: Path, provider: Provider, settings: Settings = SETTINGS, **kw: Any
) -> tuple[ProviderBatchResult, list[str]]:
    lines: list[str] = []

    async def go() -> ProviderBatchResult:
        try:
            return await run_provider_batch(
                find_tdds(folder),
                settings=settings,
                template=TEMPLATE,
                provider=provider,
                poll_interval=kw.pop("poll_interval", 0.01),
                on_progress=lines.append,
                **kw,
            )
        finally:
            await provider.aclose()

    return asyncio.run(go()), lines


def batch(folder: Path, provider: Provider, settings: Settings = SETTINGS) -> BatchResult:
    async def go() -> BatchResult:
        try:
            return await run_batch(
                find_tdds(folder), settings=settings, template=TEMPLATE, provider=provider
            )
        finally:
            await provider.aclose()

    return asyncio.run(go())


def batch_lines(server: BatchServer) -> dict[str, dict[str, Any]]:
    """The OpenAI input file's lines, by custom_id, as the fixture received them."""
    lines: dict[str, dict[str, Any]] = {}
    for data in server.files.values():
        for raw in data.decode().splitlines():
            line = json.loads(raw)
            if "method" in line:
                lines[line["custom_id"]] = line
    return lines


def test_openai_batch_prefills_checkpoints_and_the_live_run_drafts_only_what_failed(
    tmp_path: Path,
) -> None:
    folder = make_tdds(tmp_path)
    outcomes: dict[str, Outcome] = {
        "d0000-key_algorithms": "error",
        "d0001-configuration": "invalid",
    }
    with BatchServer(key=KEY, polls=2, outcomes=outcomes) as server:
        result, lines = prefill(folder, openai_at(server))
        assert (server.uploads, server.creates) == (1, 1)
        assert result.requests == 2 * len(SECTIONS)
        assert result.saved == 2 * len(SECTIONS) - 2
        assert set(result.failed) == set(outcomes)
        assert "invalid reply" in result.failed["d0001-configuration"]
        assert "500" in result.failed["d0000-key_algorithms"]
        # Progress came from the batch's status: in progress twice, then completed.
        polled = [line for line in lines if ": in_progress," in line or ": completed," in line]
        assert [("in_progress" in line) for line in polled] == [True, True, False]
        # The provider counts the invalid reply as a success; only validation rejects it.
        assert "19/20 succeeded, 1 errored" in polled[-1]
        assert not state_file(find_tdds(folder), TEMPLATE).exists()
        assert server.live == []

        done = batch(folder, openai_at(server))
        assert [r.status for r in done.rows] == ["done", "done"]
        # Every section that came back valid was taken from its checkpoint: the
        # live run asked only for the errored and the invalid one.
        assert sorted(server.live) == ["section_configuration", "section_key_algorithms"]
        assert server.creates == 1
        # The live request is byte for byte the batch line's body.
        sent = batch_lines(server)["d0000-key_algorithms"]["body"]
        live = next(b for b in server.live_bodies if b["messages"] == sent["messages"])
        assert live == sent

    record = RunRecord.model_validate_json(
        run_record_path(Path(done.rows[0].output or "")).read_bytes()
    )
    batched = next(c for c in record.calls if c.section == "implementation_strategy")
    full = call_cost(
        _Priced("openai", "gpt-4.1-mini"),
        Usage(input_tokens=batched.input_tokens, output_tokens=batched.output_tokens),
    )
    assert full is not None and batched.cost_usd == pytest.approx(full * 0.5, abs=1e-6)
    assert len(record.calls) == len(SECTIONS)


class _Priced:
    def __init__(self, name: str, model: str) -> None:
        self.name, self.model = name, model


def test_anthropic_message_batch_prefills_checkpoints_the_same_way(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path)
    outcomes: dict[str, Outcome] = {"d0001-code_examples": "error"}
    with BatchServer(key=KEY, polls=1, outcomes=outcomes) as server:
        result, lines = prefill(folder, anthropic_at(server), Settings(review="off"))
        assert server.creates == 1
        assert result.saved == 2 * len(SECTIONS) - 1
        assert list(result.failed) == ["d0001-code_examples"]
        assert "api_error" in result.failed["d0001-code_examples"]
        assert any("in_progress, 0/20 succeeded" in line for line in lines)
        assert any("ended, 19/20 succeeded, 1 errored" in line for line in lines)

        done = batch(folder, anthropic_at(server), Settings(review="off"))
        assert [r.status for r in done.rows] == ["done", "done"]
        assert server.live == ["messages"]
        params = next(iter(server.batches.values())).requests["d0001-code_examples"]
        # The batch params are the live body: system with its cache breakpoint,
        # output_config, and temperature moved out of extra_body into the params.
        assert server.live_bodies[0] == params
        assert params["temperature"] == 0.2
        assert params["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert "schema" in params["output_config"]["format"]


def test_a_restarted_run_resumes_polling_the_same_batch(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path)
    with BatchServer(key=KEY, polls=3) as server:
        with pytest.raises(BatchPending) as pending:
            prefill(folder, openai_at(server), max_wait_s=0)
        batch_id = next(iter(server.batches))
        message = str(pending.value)
        assert batch_id in message and "run the same command again" in message
        assert pending.value.exit_code == 75
        path = state_file(find_tdds(folder), TEMPLATE)
        saved = path.read_text()
        assert batch_id in saved and KEY not in saved
        # What the CLI prints on Ctrl-C now: the batch id and how to resume.
        line = interrupted_message(find_tdds(folder), TEMPLATE)
        assert batch_id in line and "run the same command again" in line

        # A new process: the state file names the batch, so nothing is submitted again.
        result, lines = prefill(folder, openai_at(server))
        assert server.creates == 1 and server.uploads == 1
        assert result.resumed and result.batch_id == batch_id
        assert result.saved == 2 * len(SECTIONS)
        assert any("resuming" in line for line in lines)
        assert not path.exists()
        assert "no provider batch was recorded" in interrupted_message(find_tdds(folder), TEMPLATE)

        # Everything is checkpointed now: a third run has nothing to submit.
        again, _ = prefill(folder, openai_at(server))
        assert (again.batch_id, again.already, server.creates) == (None, 2 * len(SECTIONS), 1)


def test_a_state_file_for_other_requests_is_reported_not_reused(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path)
    with BatchServer(key=KEY, polls=5) as server:
        with pytest.raises(BatchPending):
            prefill(folder, openai_at(server), max_wait_s=0)
        tdd = next(folder.glob("002_*"))
        tdd.write_text(tdd.read_text() + "\n## Retention\n\nKeep logs 90 days.\n")
        with pytest.raises(InputError, match=r"provider-batch\.json holds provider batch") as err:
            prefill(folder, openai_at(server))
        assert "d0001-" in str(err.value) and "changed" in str(err.value)
        with pytest.raises(InputError, match=r"not openai:gpt-4\.1-nano"):
            prefill(
                folder,
                OpenAIProvider("gpt-4.1-nano", api_key=KEY, base_url=server.openai_url),
            )
        assert server.creates == 1
        assert state_file(find_tdds(folder), TEMPLATE).exists()


def test_keys_never_reach_errors_or_the_state_file(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path, ("Billing_Export",))
    wrong = "sk-wrong-key-abcdefghijklmnop0123"
    with BatchServer(key=KEY) as server:
        for provider in (openai_at(server, wrong), anthropic_at(server, wrong)):
            with pytest.raises(ProviderError) as err:
                prefill(folder, provider)
            assert "401" in str(err.value) and wrong not in str(err.value)
            assert "\n" not in str(err.value)
        assert server.creates == 0
        assert not state_file(find_tdds(folder), TEMPLATE).exists()
        # The fixture did receive it, so the assertions above could have failed.
        assert any(wrong in json.dumps(h) for h in server.headers_seen)


def test_a_batch_the_provider_rejects_fails_once_and_is_submitted_anew_next_time(
    tmp_path: Path,
) -> None:
    folder = make_tdds(tmp_path, ("Billing_Export",))
    with BatchServer(key=KEY, fail_batch="Model gpt-4.1-mini is not supported") as server:
        with pytest.raises(ProviderError, match=r"failed: Model gpt-4\.1-mini is not supported"):
            prefill(folder, openai_at(server))
        assert not state_file(find_tdds(folder), TEMPLATE).exists()


def test_providers_without_a_batch_api_are_a_config_error(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path, ("Billing_Export",))
    needs = "--provider-batch needs openai: or anthropic: models"
    # Checked before any provider opens: no embedded server starts for this.
    with pytest.raises(ConfigError, match=f"{needs}; local has no batch API"):
        asyncio.run(
            run_provider_batch(
                find_tdds(folder), settings=Settings(model="local"), template=TEMPLATE
            )
        )
    with pytest.raises(ConfigError, match=f"{needs}; fake has no batch API"):
        prefill(folder, FakeProvider(), Settings(model="fake"))
    with pytest.raises(ConfigError, match="--no-resume"):
        asyncio.run(
            run_provider_batch(
                find_tdds(folder), settings=SETTINGS, template=TEMPLATE, resume=False
            )
        )


def test_up_to_date_and_existing_documents_are_left_out(tmp_path: Path) -> None:
    folder = make_tdds(tmp_path)
    paths = find_tdds(folder)
    first = documents_to_draft(paths, TEMPLATE)
    assert len(first) == 2
    first[0][1].parent.mkdir(parents=True)
    first[0][1].write_text("# written by hand\n")
    left = documents_to_draft(paths, TEMPLATE)
    assert [o for _, o in left] == [first[1][1]]
    assert len(documents_to_draft(paths, TEMPLATE, force=True)) == 2


def test_research_runs_live_first_and_the_batch_carries_its_notes(tmp_path: Path) -> None:
    from research import ResearchConfig

    root = tmp_path / "0xcc"
    shutil.copytree(FIXTURES / "research" / "0xcc", root)
    shutil.rmtree(root / "tids")
    folder = root / "tdds"
    config = ResearchConfig(max_queries=2)
    with BatchServer(key=KEY, polls=1) as server:
        result, _ = prefill(folder, openai_at(server), research=config)
        researched = len(server.live)
        assert researched > 0 and not any(n.startswith("section_") for n in server.live)
        assert result.saved == len(SECTIONS)
        body = next(iter(batch_lines(server).values()))["body"]
        assert "note_refs" in json.dumps(body["response_format"])

        async def go() -> BatchResult:
            provider = openai_at(server)
            try:
                return await run_batch(
                    find_tdds(folder),
                    settings=SETTINGS,
                    template=TEMPLATE,
                    provider=provider,
                    research=config,
                )
            finally:
                await provider.aclose()

        done = asyncio.run(go())
        assert [r.status for r in done.rows] == ["done"]
        # The live run reused the research and every drafted section: no call at all.
        assert len(server.live) == researched


def test_cli_provider_batch_end_to_end_and_its_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_tdds(tmp_path)
    for name in ("TIDSMITH_MODEL", "OPENAI_BASE_URL", "TIDSMITH_REVIEW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    with BatchServer(key=KEY, polls=2) as server:
        args = ["batch", str(folder), "--provider-batch", "--model", "openai:gpt-4.1-mini"]
        args += ["--base-url", server.openai_url, "--review", "off", "--poll-interval", "0.01"]
        assert main([*args, "--batch-wait", "0"]) == 75
        err = capsys.readouterr().err
        assert "still in_progress" in err and "run the same command again" in err
        assert KEY not in err

        assert main(args) == 0
        err = capsys.readouterr().err
        assert "sections saved" in err and "resuming" in err
        assert server.creates == 1 and server.live == []
    outputs = sorted((tmp_path / "0xcc" / "tids").glob("*.md"))
    assert len(outputs) == 2
    assert not any(checkpoint_folder(o).exists() for o in outputs)

    assert main(["batch", str(folder), "--provider-batch", "--model", "local"]) == 2
    assert "--provider-batch needs openai: or anthropic: models" in capsys.readouterr().err
