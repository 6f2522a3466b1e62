"""Check reports: a table for people, JSON for scripts, SARIF 2.1.0 for CI annotations.

Imports agent.check and agent.core only; never the stages or a front end.
"""

from __future__ import annotations

import json
from typing import Any

from agent.check import CheckReport
from agent.check.resolve import Finding
from agent.core import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

# SARIF levels: drifted and missing fail the check; new is a note; found is not reported.
_RULES = {
    "drifted": ("error", "The codebase has this, but with another version, signature or place."),
    "missing": ("error", "The document names something the codebase does not have."),
    "new": ("note", "The document says it creates this; the codebase does not have it yet."),
}


def _claim_text(f: Finding) -> str:
    c = f.claim
    if c.kind == "package" and c.version:
        return f"{c.value}@{c.version}" if c.ecosystem == "npm" else f"{c.value}{c.version}"
    if c.kind == "endpoint":
        return f"{c.method} {c.value}"
    if c.kind == "flag" and c.command:
        return f"{c.program} {c.command} {c.value}"
    if c.params:
        return f"{c.value}({', '.join(c.params)})"
    return c.value


def message(f: Finding) -> str:
    """One line: the claim, the verdict, where and why."""
    text = f"{f.claim.kind} `{_claim_text(f)}` {f.verdict}"
    if f.where:
        text += f" ({f.where})"
    if f.detail:
        text += f": {f.detail}"
    if f.suggestions:
        text += "; did you mean " + ", ".join(f.suggestions) + "?"
    return text


def text_lines(report: CheckReport, *, show_found: bool = False) -> list[str]:
    """A table of everything that is not found (everything with `show_found`), then counts."""
    rows = [f for f in report.findings if show_found or f.verdict != "found"]
    lines: list[str] = []
    if rows:
        width = max(len(f"{f.claim.doc}:{f.claim.line}") for f in rows)
        for f in rows:
            where = f"{f.claim.doc}:{f.claim.line}".ljust(width)
            detail = f.where + (f" {f.detail}" if f.detail else "")
            hint = f" (did you mean {', '.join(f.suggestions)}?)" if f.suggestions else ""
            lines.append(
                f"{where}  {f.verdict:<7}  {f.claim.kind:<8}  {_claim_text(f)}  {detail}{hint}"
            )
    counts = report.counts()
    lines.append(
        f"{len(report.findings)} claims in {len(report.documents)} documents against "
        f"{report.codebase}: " + ", ".join(f"{n} {v}" for v, n in counts.items())
    )
    if report.unparsed:
        lines.append(f"not parsed: {', '.join(report.unparsed[:5])}")
    return lines


def json_report(report: CheckReport) -> dict[str, Any]:
    data = report.model_dump(mode="json")
    data["counts"] = report.counts()
    return data


def sarif(report: CheckReport) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log: one result per drifted, missing or new claim."""
    rules = [
        {
            "id": f"tidsmith/{verdict}",
            "name": verdict.capitalize(),
            "shortDescription": {"text": text},
            "defaultConfiguration": {"level": level},
        }
        for verdict, (level, text) in _RULES.items()
    ]
    ids = [r["id"] for r in rules]
    results = []
    for f in report.findings:
        if f.verdict not in _RULES:
            continue
        rule = f"tidsmith/{f.verdict}"
        results.append(
            {
                "ruleId": rule,
                "ruleIndex": ids.index(rule),
                "level": _RULES[f.verdict][0],
                "message": {"text": message(f)},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f.claim.doc},
                            "region": {"startLine": max(1, f.claim.line)},
                        }
                    }
                ],
                "properties": {"kind": f.claim.kind, "claim": _claim_text(f), "where": f.where},
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "tidsmith-check",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def render(report: CheckReport, fmt: str, *, show_found: bool = False) -> str:
    if fmt == "json":
        return json.dumps(json_report(report), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(report), indent=2) + "\n"
    return "\n".join(text_lines(report, show_found=show_found)) + "\n"
