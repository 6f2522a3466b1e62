"""Route methods checked against the TDD's (agent.document.routes)."""

from __future__ import annotations

from pathlib import Path

from agent.core.tdd import tdd_routes
from agent.core.templates import Part, Section
from agent.document.routes import check_routes, one_method
from tests.drafting import draft_from_tdd

# As the example TDD's API table writes them.
TDD = """# Relay

## API

| Method | Path | Purpose |
|---|---|---|
| POST | `/api/v1/events` | Publish an event |
| PATCH | `/api/v1/endpoints/{id}` | Update an endpoint |
| DELETE | `/api/v1/endpoints/{id}` | Delete an endpoint |
| GET | `/api/v1/deliveries/{id}` | Delivery with attempt history |
| POST | `/api/v1/deliveries/{id}/redeliver` | New delivery |
"""


def test_paths_the_tdd_gives_one_method() -> None:
    known = one_method(tdd_routes(TDD))
    assert known == {
        "/api/v1/events": "POST",
        "/api/v1/deliveries/{id}": "GET",
        "/api/v1/deliveries/{id}/redeliver": "POST",
    }  # the endpoints path has two: neither is the one
    # A path at the end of a TDD's sentence is the same path.
    assert one_method(tdd_routes("Producers call POST /api/v1/events.")) == {
        "/api/v1/events": "POST"
    }


SECTION = Section(
    id="api",
    title="API",
    guidance="The API.",
    parts=[
        Part(id="routes", title="Routes", kind="list", guidance="Routes.", max_chars=900),
        Part(
            id="table",
            title="Table",
            kind="table",
            columns=["Method", "Path"],
            guidance="Routes.",
            max_chars=600,
        ),
        Part(
            id="client",
            title="Client",
            kind="code",
            language="bash",
            guidance="A call.",
            max_chars=300,
        ),
    ],
)


def test_a_route_named_with_another_method_gets_the_tdds() -> None:
    content = {
        "routes": [
            "POST /api/v1/deliveries/{id}: Delivery with attempt history",
            "`GET` `/api/v1/events`: publish",
            "POST /api/v1/deliveries/{id}/redeliver: as the TDD has it",
            "PUT /api/v1/endpoints/{id}: the TDD gives this path two methods",
            "GET /api/v2/unknown: not in the TDD",
        ],
        "table": [{"method": "POST", "path": "`/api/v1/deliveries/{id}`"}],
        "client": {"intro": "", "code": "curl -X POST /api/v1/deliveries/{id}"},
    }
    content, notes = check_routes(SECTION, content, tdd_routes(TDD))
    assert content["routes"] == [
        "GET /api/v1/deliveries/{id}: Delivery with attempt history",
        "`POST` `/api/v1/events`: publish",
        "POST /api/v1/deliveries/{id}/redeliver: as the TDD has it",
        "PUT /api/v1/endpoints/{id}: the TDD gives this path two methods",
        "GET /api/v2/unknown: not in the TDD",
    ]
    assert content["table"] == [{"method": "GET", "path": "`/api/v1/deliveries/{id}`"}]
    assert content["client"]["code"] == "curl -X POST /api/v1/deliveries/{id}"  # code is left
    assert len(notes) == 1 and "POST /api/v1/deliveries/{id} -> GET" in notes[0]


def test_a_drafted_spec_names_the_tdds_methods(tmp_path: Path) -> None:
    reply = {"endpoints": ["POST /api/v1/deliveries/{id}: Delivery with attempts"], "tdd_refs": []}
    draft = draft_from_tdd(tmp_path, TDD, "spec", "api_specification", reply)
    assert draft.content["endpoints"] == ["GET /api/v1/deliveries/{id}: Delivery with attempts"]
