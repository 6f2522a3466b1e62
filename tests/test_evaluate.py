"""Eval over a tiny corpus: pairing by number, entity recall, totals, the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.evaluate import entity_recall, extract_entities

FIXTURES = Path(__file__).parent / "fixtures"
TDD = FIXTURES / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"
GOOD_TID = (FIXTURES / "review" / "good_tid.md").read_text(encoding="utf-8")

REFERENCE = """# Technical Implementation Document: Billing Export

## 1. File-by-File Implementation

#### `backend/src/services/export_service.py`
```python
import celery
from fastapi import APIRouter
from backend.src.models import Export

class ExportService:
    def create_export(self, month: str) -> str:
        return month
```

```text
fastapi==0.115.0
celery==5.4.0
```

#### `frontend/src/api/exports.ts`
```typescript
import { create } from "zustand";
interface ExportJob { id: string }
function startExport(): void {}
```
"""


def test_entities_are_found_by_kind() -> None:
    found = extract_entities(REFERENCE)
    assert found.paths == ["backend/src/services/export_service.py", "frontend/src/api/exports.ts"]
    assert found.classes == ["ExportJob", "ExportService"]
    assert found.functions == ["create_export", "startExport"]
    # Third-party only: the project's own `backend` package is left out.
    assert found.packages == ["celery", "fastapi", "zustand"]
    assert found.versions == ["celery 5.4.0", "fastapi 0.115.0"]


def test_entity_recall_counts_what_ours_names_too() -> None:
    ours = (
        "File: `services/export_service.py` holds ExportService; fastapi==0.115.0, "
        "Celery 5.3.0, and create_exports (not the same name)."
    )
    recall = entity_recall(REFERENCE, ours)
    assert (recall["paths"].found, recall["paths"].total) == (1, 2)
    assert (recall["classes"].found, recall["classes"].total) == (1, 2)
    assert recall["functions"].found == 0
    assert (recall["packages"].found, recall["packages"].total) == (2, 3)
    assert recall["versions"].found == 1 and recall["versions"].missing == ["celery 5.4.0"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "0xcc"
    (root / "tdds").mkdir(parents=True)
    (root / "tids").mkdir()
    (root / "tdds" / TDD.name).write_text(TDD.read_text(), encoding="utf-8")
    (root / "tids" / "001_FTID|Billing_Export.md").write_text(REFERENCE, encoding="utf-8")
    return root


def test_eval_reads_our_documents_from_docs(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "ours"
    docs.mkdir()
    (docs / "001_FTID_Billing_Export.md").write_text(GOOD_TID, encoding="utf-8")
    out = tmp_path / "eval.json"
    assert main(["eval", str(corpus), "--docs", str(docs), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["source"] == "docs" and row["document"].endswith("001_FTID_Billing_Export.md")
    assert row["sections"] == "10/10" and row["lint_errors"] == 0
    assert row["code_blocks"] == "16/16"  # 15 code blocks and the Mermaid diagram
    # Ours names ExportService, fastapi==0.115.0 and celery==5.4.0, nothing of the frontend.
    assert row["recall"]["versions"] == {"found": 2, "total": 2, "missing": []}
    assert row["recall"]["classes"]["found"] == 1
    assert 0 < row["entity_recall"] < 1
    assert data["totals"]["entity_recall"] == row["entity_recall"]
    assert "totals" in capsys.readouterr().out


def test_eval_without_docs_checks_the_references(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    assert main(["eval", str(corpus), "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["source"] == "reference"
    assert row["entity_recall"] is None
    assert "section.missing" in row["failed_lints"]


def test_eval_generates_with_the_fake_model(corpus: Path, tmp_path: Path) -> None:
    docs = tmp_path / "generated"
    out = tmp_path / "eval.json"
    args = ["eval", str(corpus), "--generate", "-m", "fake", "--docs", str(docs), "-q"]
    assert main([*args, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["source"] == "generated"
    assert Path(row["document"]).parent == docs
    assert row["sections"] == "10/10"
    # Schema samples state no performance numbers: the lints see that.
    assert "perf.target-numbers" in row["failed_lints"]
    # A second run reuses the document instead of generating again.
    mtime = Path(row["document"]).stat().st_mtime_ns
    # (A second report goes to a new file: --json never overwrites without --force.)
    assert main([*args, "--json", str(tmp_path / "again.json")]) == 0
    assert Path(row["document"]).stat().st_mtime_ns == mtime


def test_eval_bad_corpus_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
