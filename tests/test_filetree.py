"""A `tree` part: files as rows, drawn by code (agent/core/filetree.py)."""

from __future__ import annotations

from pathlib import Path

from agent.check.code_blocks import tree_claims
from agent.core.filetree import MAX_ROWS, add_missing, clean_path, draw_tree
from agent.core.tdd import load_tdd
from agent.core.templates import get_template, section_model
from agent.document.assemble import render_part
from agent.draft.plan import plan_messages
from agent.draft.prompting import describe_fields
from agent.draft.sections import complete_trees
from agent.providers.fake import FakeProvider

ROWS = [
    {"path": "relay/main.py", "holds": "FastAPI app."},
    {"path": "relay/api/events.py", "holds": "# POST /events handler"},
    {"path": "relay/delivery/retry.py", "holds": "RetryPolicy backoff"},
    {"path": "relay/api/endpoints.py", "holds": "endpoint routes"},
]


def test_rows_under_one_folder_are_drawn_under_it_with_a_comment_each() -> None:
    assert draw_tree(ROWS).split("\n") == [
        "relay/",
        "├── main.py           # FastAPI app",
        "├── api/",
        "│   ├── events.py     # POST /events handler",
        "│   └── endpoints.py  # endpoint routes",
        "└── delivery/",
        "    └── retry.py      # RetryPolicy backoff",
    ]


def test_rows_in_two_folders_are_drawn_from_the_repository_root() -> None:
    rows = [*ROWS[:1], {"path": "tests/test_main.py", "holds": "app tests"}]
    assert draw_tree(rows).split("\n") == [
        ".",
        "├── relay/",
        "│   └── main.py       # FastAPI app",
        "└── tests/",
        "    └── test_main.py  # app tests",
    ]


def test_the_check_reads_every_drawn_path_back() -> None:
    """`tidsmith check` reads trees from documents: a drawn tree must give back its paths."""
    for rows in (ROWS, [*ROWS, {"path": "tests/test_retry.py", "holds": "retry tests"}]):
        files = {c.value for c in tree_claims(draw_tree(rows), 1) if "." in c.value}
        assert files == {clean_path(r["path"]) for r in rows}


def test_paths_as_models_write_them_are_cleaned_and_repeats_dropped() -> None:
    assert clean_path("`./relay/models.py` (new)") == "relay/models.py"
    assert clean_path("relay\\\\db.py") == "relay/db.py"
    assert clean_path(" / ") == ""
    assert clean_path("DeliveryService") == ""  # a class, not a file
    assert (clean_path("Dockerfile"), clean_path("relay/AppConfig")) == (
        "Dockerfile",
        "relay/AppConfig",
    )
    tree = draw_tree(
        [
            {"path": "relay/db.py", "holds": "engine"},
            {"path": "/relay/db.py", "holds": "again"},
            {"path": "relay/", "holds": "the package"},
            {"path": "", "holds": "nothing"},
        ]
    )
    assert tree.split("\n") == ["relay/  # the package", "└── db.py  # engine"]


def test_a_folder_row_that_is_the_only_root_gives_its_comment_to_the_root_line() -> None:
    tree = draw_tree([{"path": "relay/", "holds": "the service"}, *ROWS[:1]])
    assert tree.split("\n")[0] == "relay/  # the service"


def test_no_path_at_all_renders_a_note_not_an_empty_block() -> None:
    part = get_template("tid").section("code_structure").parts[0]
    assert part.kind == "tree"
    assert render_part(part, [{"path": " ", "holds": "x"}]).startswith("> **Note:**")
    assert render_part(part, ROWS).startswith("```text\nrelay/\n")


def test_the_schema_bounds_rows_and_the_prompt_states_them() -> None:
    section = get_template("tid").section("code_structure")
    schema = section_model(section).model_json_schema()
    node = schema["properties"]["directory_structure"]
    assert (node["minItems"], node["maxItems"]) == (6, 16)
    row = schema["$defs"][node["items"]["$ref"].split("/")[-1]]
    assert set(row["required"]) == {"path", "holds"}
    assert all("maxLength" in p for p in row["properties"].values())
    described = describe_fields(section, schema=schema)
    assert "directory_structure (Directory Structure): a list of 6 to 16 files" in described


def test_the_tdds_files_a_tree_leaves_out_are_added_under_their_folders() -> None:
    files = [
        ("relay/main.py", "create_app()"),
        ("relay/delivery/worker.py", "WorkerSettings"),
        ("relay/delivery/signing.py", "Signer"),
    ]
    rows = [*ROWS, {"path": "worker.py", "holds": "the arq worker"}]
    out, added = add_missing(rows, files)
    # main.py is drawn; worker.py is, under a shorter path; signing.py is not.
    assert added == ["relay/delivery/signing.py"]
    assert out[: len(rows)] == rows
    drawn = draw_tree(out)
    lines = drawn.split("\n")
    # Under relay/delivery/, after the file the model gave there.
    at = next(i for i, line in enumerate(lines) if "signing.py" in line)
    assert "retry.py" in lines[at - 1] and lines[at].split("signing.py")[1].split() == [
        "#",
        "Signer",
    ]
    assert drawn.count("main.py") == 1


def test_added_files_stop_at_the_row_limit() -> None:
    rows = [{"path": f"app/m{i}.py", "holds": "a module"} for i in range(MAX_ROWS - 1)]
    out, added = add_missing(rows, [("app/x.py", ""), ("app/y.py", "")])
    assert added == ["app/x.py"] and len(out) == MAX_ROWS


def test_a_drafted_tree_gets_the_tdds_files_and_says_so(tmp_path: Path) -> None:
    tdd_path = tmp_path / "001_FTDD|Relay.md"
    tdd_path.write_text(
        "# Relay\n\n## Files\n\n"
        "- `relay/main.py` (`create_app()`), `relay/delivery/retry.py` (`RetryPolicy`)\n",
        encoding="utf-8",
    )
    tid = get_template("tid")
    plan = plan_messages(
        tid, load_tdd(tdd_path), FakeProvider([]), max_tokens=1000, schema_in_text=False
    )
    # Only the section with a tree carries them.
    assert list(plan.files) == ["code_structure"]
    files = plan.files["code_structure"]
    content = {"directory_structure": [{"path": "relay/main.py", "holds": "the app"}]}
    section = tid.section("code_structure")
    content, notes = complete_trees(section, content, files)
    assert content["directory_structure"][1] == {
        "path": "relay/delivery/retry.py",
        "holds": "RetryPolicy",
    }
    assert notes == ["directory_structure: added the TDD's relay/delivery/retry.py"]
