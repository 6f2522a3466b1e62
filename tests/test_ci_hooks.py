"""The CI hooks as CI runs them: the pre-commit hooks' entry and the GitHub Action's script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "fixtures" / "review" / "good_tid.md"
BROKEN = "# TID\n\n## 1. Implementation Strategy\n\nTODO\n\n```python\ndef broken(:\n```\n"


def _hooks() -> list[dict[str, Any]]:
    return yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def docs(tmp_path: Path) -> tuple[Path, Path]:
    """A good and a broken TID where a project keeps them."""
    tids = tmp_path / "0xcc" / "tids"
    tids.mkdir(parents=True)
    good = tids / "001_FTID|Good.md"
    shutil.copy(GOOD, good)
    broken = tids / "002_FTID|Broken.md"
    broken.write_text(BROKEN, encoding="utf-8")
    return good, broken


def _bin_path() -> str:
    """PATH with this environment's `tidsmith` script first, as an installed hook has it."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _run_hook(hook: dict[str, Any], files: list[str], cwd: Path) -> int:
    """Run a hook the way pre-commit does: entry + args + the matching file names."""
    matching = [f for f in files if re.search(hook["files"], f)]
    argv = [*hook["entry"].split(), *hook.get("args", []), *matching]
    env = {**os.environ, "PATH": _bin_path()}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False).returncode


@pytest.mark.parametrize("hook_id", ["tidsmith-review", "tidsmith-review-system"])
def test_review_hook_passes_a_good_document_and_fails_a_broken_one(
    hook_id: str, docs: tuple[Path, Path], tmp_path: Path
) -> None:
    [hook] = [h for h in _hooks() if h["id"] == hook_id]
    assert "markdown" in hook["types"]
    good, broken = (str(p.relative_to(tmp_path)) for p in docs)
    assert not re.search(hook["files"], "0xcc/tdds/001_FTDD|Good.md")
    assert _run_hook(hook, [good], tmp_path) == 0
    assert _run_hook(hook, [broken], tmp_path) == 1
    assert _run_hook(hook, [good, broken], tmp_path) == 1


def test_pre_commit_try_repo_runs_the_installed_hook(
    docs: tuple[Path, Path], tmp_path: Path
) -> None:
    """`pre-commit try-repo` itself, with the hook that needs no install (works offline)."""
    pre_commit = Path(sys.executable).parent / "pre-commit"
    if not pre_commit.exists():
        pytest.fail("pre-commit is a dev dependency: run uv sync")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", hooks)
    env = {
        **os.environ,
        "PATH": _bin_path(),
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }
    for repo in (hooks, tmp_path):
        subprocess.run(["git", "init", "-q"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "add", "."], cwd=hooks, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "hooks"], cwd=hooks, env=env, check=True)
    subprocess.run(["git", "add", "0xcc"], cwd=tmp_path, env=env, check=True)

    def try_repo(*files: Path) -> subprocess.CompletedProcess[str]:
        names = [str(f.relative_to(tmp_path)) for f in files]
        return subprocess.run(
            [str(pre_commit), "try-repo", str(hooks), "tidsmith-review-system", "--files", *names],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    good, broken = docs
    passed = try_repo(good)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    failed = try_repo(good, broken)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "tidsmith review" in failed.stdout and "Failed" in failed.stdout


def _action_script() -> str:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    [step] = [s for s in action["runs"]["steps"] if s.get("id") == "run"]
    return step["run"]


def _run_action(inputs: dict[str, str], cwd: Path, tmp_path: Path) -> tuple[int, str]:
    """The action's script under bash, with its inputs as the workflow passes them."""
    output = tmp_path / "github_output"
    output.write_text("", encoding="utf-8")
    (tmp_path / "runner").mkdir(exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        "PATH": _bin_path(),
        "GITHUB_OUTPUT": str(output),
        "RUNNER_TEMP": str(tmp_path / "runner"),
        "TIDSMITH_COMMAND": inputs.get("command", "review"),
        "TIDSMITH_DOCUMENTS": inputs.get("documents", "0xcc/tids/*.md 0xcc/specs/*.md"),
        "TIDSMITH_TDD": inputs.get("tdd", ""),
        "TIDSMITH_CASSETTE": inputs.get("cassette", ""),
        "TIDSMITH_TEMPLATE_NAME": inputs.get("template", ""),
        "TIDSMITH_OUT": inputs.get("out", ""),
    }
    done = subprocess.run(
        ["bash", "-c", _action_script()], cwd=cwd, env=env, capture_output=True, check=False
    )
    return done.returncode, output.read_text(encoding="utf-8")


def _summary(github_output: str) -> Any:
    match = re.search(r"summary<<(\w+)\n(.*)\n\1\n", github_output, re.S)
    assert match, github_output
    return json.loads(match.group(2))


def test_action_reviews_documents_and_sets_the_summary_output(
    docs: tuple[Path, Path], tmp_path: Path
) -> None:
    good, _broken = docs
    code, out = _run_action({"documents": str(good.relative_to(tmp_path))}, tmp_path, tmp_path)
    assert code == 0
    assert _summary(out)["passed"] is True
    code, out = _run_action({}, tmp_path, tmp_path)  # the default globs: both documents
    assert code == 1
    assert [s["passed"] for s in _summary(out)] == [True, False]
    code, _ = _run_action({"documents": "nothing/*.md"}, tmp_path, tmp_path)
    assert code == 2


def test_action_replays_a_cassette(tmp_path: Path) -> None:
    example = ROOT / "examples" / "0xcc"
    shutil.copytree(example / "tdds", tmp_path / "0xcc" / "tdds")
    tdd = "0xcc/tdds/001_FTDD|Webhook_Delivery.md"
    inputs = {
        "command": "replay",
        "tdd": tdd,
        "cassette": str(ROOT / "cassettes" / "openai-spec.yaml"),
        "template": "spec",
        "out": "replayed",
    }
    code, out = _run_action(inputs, tmp_path, tmp_path)
    assert code == 0, out
    summary = _summary(out)
    assert summary["path"].startswith("replayed/") and summary["template"] == "spec"
    assert (tmp_path / summary["path"]).is_file()
