"""tidsmith check: claims, verdicts against fixture codebases, reports, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.check import check_documents, extract_claims
from agent.check.report import sarif
from agent.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "check"
SHOP = FIXTURES / "shop"
DOC = FIXTURES / "shop-tid.md"

# Every claim seeded in shop-tid.md and the verdict the design of the fixture
# gives it: (kind, value, document line) -> verdict. Written from the fixture
# code, not from the checker's output.
EXPECTED: dict[tuple[str, str, int], str] = {
    ("path", "shop", 3): "found",
    ("path", "shop/shop", 10): "found",
    ("path", "shop/shop/orders.py", 11): "found",
    ("path", "shop/shop/api.py", 12): "found",
    ("path", "shop/shop/refunds.py", 13): "new",
    ("path", "shop/shop/payments.py", 14): "missing",
    ("path", "shop/web", 15): "found",
    ("path", "shop/web/src", 16): "found",
    ("path", "shop/web/src/users.ts", 17): "found",
    ("path", "shop/web/src/billing.ts", 18): "missing",
    ("path", "shop/cli.py", 21): "found",
    ("path", "shop/settings.py", 21): "missing",
    ("path", "config.py", 22): "found",
    ("path", "web/src/server.ts", 22): "found",
    ("symbol", "OrderService.create", 26): "found",
    ("symbol", "total_price", 27): "found",
    ("symbol", "OrderService.cancel", 27): "drifted",  # no `reason` parameter
    ("symbol", "shop.orders.OrderService", 28): "found",
    ("symbol", "shop.api.total_price", 29): "drifted",  # it is in shop.orders
    ("symbol", "OrderService.refund", 29): "missing",
    ("symbol", "InvoiceBuilder", 30): "missing",
    ("symbol", "UserStore.add", 32): "found",
    ("symbol", "validateEmail", 32): "found",
    ("symbol", "parseUser", 33): "found",
    ("symbol", "UserStore.remove", 33): "missing",
    ("symbol", "hashPassword", 34): "missing",
    ("path", "shop/orders.py", 36): "found",
    ("symbol", "OrderService", 39): "found",
    ("symbol", "OrderService.create", 40): "found",
    ("symbol", "OrderService.archive", 43): "missing",
    ("import", "shop.orders.OrderService", 48): "found",
    ("import", "shop.orders.total_price", 48): "found",
    ("import", "shop.config.Settings", 49): "found",
    ("import", "shop.config.load_settings", 49): "missing",
    ("import", "httpx", 50): "found",
    ("import", "requests", 51): "missing",
    ("symbol", "shop.orders.total_price", 53): "drifted",  # no `currency` parameter
    ("endpoint", "/orders/{id}", 60): "found",
    ("endpoint", "/orders", 61): "found",
    ("endpoint", "/orders/{id}", 62): "drifted",  # DELETE is not served, GET is
    ("endpoint", "/health", 63): "found",
    ("endpoint", "/api/users", 64): "drifted",  # POST, not GET
    ("endpoint", "/api/users/{userId}", 65): "found",
    ("import", "express", 70): "found",
    ("import", "zod", 71): "found",
    ("import", "jsonwebtoken", 72): "missing",
    ("symbol", "UserStore", 73): "found",
    ("env", "SHOP_DB_URL", 78): "found",
    ("env", "TSWEB_PORT", 78): "found",
    ("env", "SHOP_API_TOKEN", 79): "missing",
    ("config", "shop", 82): "found",
    ("config", "shop.db_url", 83): "found",
    ("config", "shop.batch_size", 84): "found",
    ("config", "shop.retry_limit", 85): "missing",
    ("package", "httpx", 92): "found",
    ("package", "pydantic", 92): "found",
    ("package", "rich", 92): "missing",
    ("package", "pydantic", 95): "drifted",  # locked at 2.9.2
    ("package", "express", 95): "found",
    ("package", "zod", 95): "drifted",  # locked at 3.23.8
    ("package", "left-pad", 96): "missing",
    ("command", "shop export", 99): "found",
    ("flag", "--format", 99): "found",
    ("flag", "--since", 99): "found",
    ("command", "shop import", 100): "found",
    ("flag", "--dry-run", 100): "found",
    ("command", "shop import", 101): "found",
    ("flag", "--since", 101): "drifted",  # export takes it, import does not
    ("command", "shop report", 102): "missing",
    ("flag", "--month", 102): "missing",
    ("command", "tsweb serve", 103): "found",
    ("flag", "--port", 103): "found",
}


def test_precision_and_recall_on_the_seeded_document() -> None:
    report = check_documents([DOC], SHOP)
    got = {(f.claim.kind, f.claim.value, f.claim.line): f.verdict for f in report.findings}
    scores: dict[str, tuple[float, float]] = {}
    for verdict in ("found", "drifted", "missing"):
        predicted = {k for k, v in got.items() if v == verdict}
        wanted = {k for k, v in EXPECTED.items() if v == verdict}
        hits = len(predicted & wanted)
        precision = hits / len(predicted) if predicted else 1.0
        recall = hits / len(wanted) if wanted else 1.0
        scores[verdict] = (precision, recall)
    # Each verdict class is counted on its own: extra claims lower precision,
    # claims not extracted lower recall.
    for verdict, (precision, recall) in scores.items():
        assert precision >= 0.95, (verdict, precision, sorted(set(got) ^ set(EXPECTED)))
        assert recall >= 0.9, (verdict, recall)
    assert len([v for v in EXPECTED.values() if v == "drifted"]) >= 8
    assert len([v for v in EXPECTED.values() if v == "missing"]) >= 15


def test_drifted_claims_say_where() -> None:
    report = check_documents([DOC], SHOP)
    by_key = {(f.claim.kind, f.claim.value, f.claim.line): f for f in report.findings}
    moved = by_key[("symbol", "shop.api.total_price", 29)]
    assert moved.where == "shop/orders.py:10"
    assert "shop.orders.total_price" in moved.detail
    pinned = by_key[("package", "pydantic", 95)]
    assert pinned.where == "uv.lock:10" and "2.9.2" in pinned.detail
    flag = by_key[("flag", "--since", 101)]
    assert "export" in flag.detail


def test_fuzzy_matches_are_suggestions_never_found(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# D\n\nThe service is `OrderServise`; see `shop/order.py`.\n")
    report = check_documents([doc], SHOP)
    assert [f.verdict for f in report.findings] == ["missing", "missing"]
    assert "OrderService" in report.findings[0].suggestions
    assert "shop/orders.py" in report.findings[1].suggestions


def test_expect_planned_and_tdd_make_absent_claims_new(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# D\n\n`RefundService` and `InvoiceBuilder` and `OrderService`.\n")
    tdd = tmp_path / "tdd.md"
    tdd.write_text("# TDD\n\n## Refunds\n\nA `RefundService` handles refunds.\n")
    verdicts = [f.verdict for f in check_documents([doc], SHOP, tdd=tdd).findings]
    assert verdicts == ["new", "missing", "found"]
    planned = [f.verdict for f in check_documents([doc], SHOP, planned=True).findings]
    assert planned == ["new", "new", "found"]


def test_ignore_directives_and_prose_are_not_claims() -> None:
    text = (
        "# D\n\nPlain words like OrderService are prose.\n\n"
        "<!-- tidsmith-check: ignore -->\n`made/up.py` is an example.\n\n"
        "<!-- tidsmith-check: off -->\n```python\nimport nothing_real\n```\n"
        "<!-- tidsmith-check: on -->\n`real/one.py`\n"
    )
    assert [c.value for c in extract_claims(text)] == ["real/one.py"]


def test_sarif_has_the_required_fields() -> None:
    log = sarif(check_documents([DOC], SHOP))
    # SARIF 2.1.0: sarifLog.version and runs; run.tool.driver.name; result.message.
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert run["results"]
    for result in run["results"]:
        assert result["message"]["text"]
        assert result["level"] in {"none", "note", "warning", "error"}
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"].endswith("shop-tid.md")
        assert location["region"]["startLine"] >= 1
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {
        "tidsmith/new": "note",
        "tidsmith/drifted": "error",
        "tidsmith/missing": "error",
    }


def test_cli_exit_status_and_thresholds(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", str(DOC), "--codebase", str(SHOP)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "drifted" in out and "shop-tid.md:29" in out
    assert main([*args, "--max-drifted", "20", "--max-missing", "30"]) == 0
    capsys.readouterr()
    assert main([*args, "--format", "json", "--max-drifted", "20", "--max-missing", "30"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["drifted"] == 8


def test_cli_bad_codebase_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(DOC), "--codebase", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--codebase" in err[0]


def test_the_projects_own_docs_pass() -> None:
    root = Path(__file__).parent.parent
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    report = check_documents(docs, root)
    bad = [
        f"{f.claim.doc}:{f.claim.line} {f.verdict} {f.claim.value}"
        for f in report.findings
        if f.verdict in ("drifted", "missing")
    ]
    assert bad == []
    assert report.count("found") > 300
