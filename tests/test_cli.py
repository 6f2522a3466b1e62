"""The CLI as a user meets it: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.core.templates import get_template

GOOD = "# Technical Design Document: Search\n\n## 1. Index\n\nAn inverted index in SQLite.\n"


@pytest.fixture
def tdd(tmp_path: Path) -> Path:
    path = tmp_path / "0xcc" / "tdds" / "003_FTDD|Search.md"
    path.parent.mkdir(parents=True)
    path.write_text(GOOD, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "TIDSMITH_MODEL"):
        monkeypatch.delenv(var, raising=False)


def test_generate_on_the_fake_provider_writes_by_convention(
    tdd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", str(tdd), "--model", "fake", "-q"]) == 0
    out = tdd.parent.parent / "tids" / "003_FTID|Search.md"
    assert out.is_file()
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert "tokens" in printed


def test_safe_names_and_out_folder(tdd: Path, tmp_path: Path) -> None:
    dest = tmp_path / "docs"
    dest.mkdir()
    args = ["generate", str(tdd), "-m", "fake", "-q", "--out", str(dest), "--safe-names"]
    assert main(args) == 0
    assert (dest / "003_FTID_Search.md").is_file()


def test_no_overwrite_without_force(tdd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tdd), "-m", "fake", "-q"]) == 0
    capsys.readouterr()
    assert main(["generate", str(tdd), "-m", "fake", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert main(["generate", str(tdd), "-m", "fake", "-q", "--force"]) == 0


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"# T\n\x00\x01binary", "binary"),
        ("# Caf\u00e9\n".encode("latin-1"), "UTF-8"),
        (b"just prose, no headings at all\n", "heading"),
    ],
)
def test_bad_tdd_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, needle: str
) -> None:
    bad = tmp_path / "tdds" / "bad.md"
    bad.parent.mkdir()
    bad.write_bytes(content)
    assert main(["generate", str(bad), "-m", "fake", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tidsmith: error:") and err.count("\n") == 1
    assert needle.lower() in err.lower()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bad.md", "tdds"]


def test_too_large_tdd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.md"
    big.write_text("# Big\n" + "x" * (2 * 1024 * 1024 + 10), encoding="utf-8")
    assert main(["generate", str(big), "-m", "fake", "-q"]) == 2
    assert "MB" in capsys.readouterr().err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tmp_path / "nope.md"), "-m", "fake"]) == 2
    assert "nope.md" in capsys.readouterr().err


def test_unknown_model_and_missing_key(tdd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tdd), "-m", "gemini:pro", "-q"]) == 2
    assert "unknown model id" in capsys.readouterr().err
    assert main(["generate", str(tdd), "-m", "openai:gpt-4.1-mini", "-q"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
    assert main(["generate", str(tdd), "-m", "anthropic:claude-sonnet-4-6", "-q"]) == 2
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert not (tdd.parent.parent / "tids").exists()


def test_broken_user_template(
    tdd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "mine.yaml"
    broken.write_text("name: mine\nversion: '1'\n", encoding="utf-8")
    assert main(["generate", str(tdd), "-m", "fake", "-t", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "mine.yaml" in err and "field" in err


def test_templates_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("spec ") or "\nspec " in out
    assert f"tid {get_template('tid').version}:" in out
    assert "Quality" in out or "checklist: 10 items" in out


def test_debug_env_reraises(tdd: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agent.core.errors import InputError

    monkeypatch.setenv("TIDSMITH_DEBUG", "1")
    with pytest.raises(InputError):
        main(["generate", str(tmp_path / "missing.md"), "-m", "fake"])


def test_help_is_fast_and_imports_no_sdk() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from agent.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['generate', '--help'])\n"
        "    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('openai', 'anthropic', 'langchain_core', 'tiktoken', 'httpx')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == ""


def test_python_dash_m_agent_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("tidsmith ")
