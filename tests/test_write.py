"""Output naming convention, safe names and atomic writes."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.core import write
from agent.core.errors import ConfigError, InputError
from agent.core.paths import default_output_path
from agent.core.tdd import Tdd, load_tdd
from agent.core.write import safe_filename, write_atomic, write_json_atomic

TDD_TEXT = "# Technical Design Document: {title}\n\n## 1. Overview\n\nText.\n"


def _tdd_file(path: Path, title: str = "Model Management") -> Tdd:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TDD_TEXT.format(title=title), encoding="utf-8")
    return load_tdd(path)


def _tdd(path: Path, slug: str, number: str | None = None) -> Tdd:
    """A Tdd built directly, to feed names tdd.py itself would never produce."""
    return Tdd(
        path=str(path),
        text="# T\n",
        sha256="0" * 64,
        title=slug,
        doc_id=path.stem,
        feature=slug,
        feature_slug=slug,
        number=number,
        headings=[],
        links=[],
    )


# --- naming convention ----------------------------------------------------------------------


def test_tid_goes_to_the_sibling_tids_folder(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "0xcc" / "tdds" / "002_FTDD|Model_Management.md")

    path = default_output_path(tdd, "TID")

    assert path == tmp_path / "0xcc" / "tids" / "002_FTID|Model_Management.md"


def test_spec_goes_to_a_specs_folder(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "0xcc" / "tdds" / "002_FTDD|Model_Management.md")

    path = default_output_path(tdd, "spec")

    assert path == tmp_path / "0xcc" / "specs" / "002_FSPEC|Model_Management.md"


def test_a_project_tdd_keeps_its_p_scope(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "0xcc" / "tdds" / "000_PTDD|miStudio.md")

    assert default_output_path(tdd, "TID").name == "000_PTID|miStudio.md"


def test_safe_names_replace_the_pipe(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "0xcc" / "tdds" / "002_FTDD|Model_Management.md")

    path = default_output_path(tdd, "TID", safe_names=True)

    assert path == tmp_path / "0xcc" / "tids" / "002_FTID_Model_Management.md"


def test_outside_a_tdds_folder_the_output_goes_beside_the_tdd(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "docs" / "billing-export.md", title="Billing Export")

    path = default_output_path(tdd, "TID")

    assert path == tmp_path / "docs" / "tids" / "001_FTID|Billing_Export.md"


def test_an_unnumbered_tdd_takes_the_next_free_number(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "docs" / "billing-export.md", title="Billing Export")
    tids = tmp_path / "docs" / "tids"
    tids.mkdir()
    for name in ["001_FTID|A.md", "007_FTID|B.md", "notes.md", "12x_odd.md"]:
        (tids / name).write_text("x")

    assert default_output_path(tdd, "TID").name == "008_FTID|Billing_Export.md"


def test_a_number_from_the_tdd_is_padded(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "7_FTDD|Queues.md")

    assert default_output_path(tdd, "TID").name == "007_FTID|Queues.md"


def test_out_folder(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "0xcc" / "tdds" / "002_FTDD|Model_Management.md")
    out = tmp_path / "elsewhere"
    out.mkdir()

    assert default_output_path(tdd, "TID", out) == out / "002_FTID|Model_Management.md"


def test_out_folder_that_does_not_exist_yet_numbers_from_001(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "design.md", title="Usage Metering")
    out = tmp_path / "new" / "folder"

    assert default_output_path(tdd, "TID", out) == out / "001_FTID|Usage_Metering.md"


def test_out_md_file_is_used_as_is(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "0xcc" / "tdds" / "002_FTDD|Model_Management.md")
    out = tmp_path / "mine" / "Custom Name|v2.MD"

    assert default_output_path(tdd, "TID", out, safe_names=True) == out


def test_out_md_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "x.md", title="X")
    out = tmp_path / "odd.md"
    out.mkdir()

    with pytest.raises(InputError, match="is a folder"):
        default_output_path(tdd, "TID", out)


def test_out_md_under_a_file_is_refused(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "x.md", title="X")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")

    with pytest.raises(InputError, match="is a file"):
        default_output_path(tdd, "TID", blocker / "out.md")


def test_out_that_is_an_existing_non_md_file_is_refused(tmp_path: Path) -> None:
    tdd = _tdd_file(tmp_path / "x.md", title="X")
    out = tmp_path / "notes.txt"
    out.write_text("x")

    with pytest.raises(InputError, match="not a folder"):
        default_output_path(tdd, "TID", out)


@pytest.mark.parametrize("kind", ["", "T I D", "../TID", "9TID"])
def test_a_bad_kind_is_a_config_error(tmp_path: Path, kind: str) -> None:
    tdd = _tdd_file(tmp_path / "x.md", title="X")

    with pytest.raises(ConfigError):
        default_output_path(tdd, kind)


# --- hostile titles -------------------------------------------------------------------------

HOSTILE = [
    "../x",
    "../../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\system32",
    "CON",
    "a|b",
    'a<b>c:d"e?f*g',
    "x" * 300,
    "é" * 300,
    "🙂" * 120,
    "",
    "   ",
    "...",
    "tab\tnew\nline\x00nul",
    "数据导出",
]
WINDOWS_INVALID = set('<>:"/\\|?*')


@pytest.mark.parametrize("slug", HOSTILE)
@pytest.mark.parametrize("number", [None, "001"])
@pytest.mark.parametrize("safe_names", [False, True])
def test_hostile_slugs_stay_in_the_output_folder(
    tmp_path: Path, slug: str, number: str | None, safe_names: bool
) -> None:
    tdd = _tdd(tmp_path / "in" / "whatever.md", slug, number)
    out = tmp_path / "out"

    path = default_output_path(tdd, "TID", out, safe_names=safe_names)

    assert path.parent == out
    assert path.resolve().parent == out.resolve()
    name = path.name
    assert name.endswith(".md")
    assert len(name.encode()) <= 200
    assert "/" not in name and "\\" not in name and ".." not in name
    assert not any(ord(c) < 32 for c in name)
    assert name[0] not in ". " and name[-1] not in ". "
    if safe_names:
        assert not WINDOWS_INVALID & set(name)


@pytest.mark.parametrize(
    "title", ["../x", "/etc/passwd", "CON", "a|b", "x" * 300, "???", "数据导出"]
)
def test_hostile_titles_through_load_tdd(tmp_path: Path, title: str) -> None:
    tdd = _tdd_file(tmp_path / "tdd.md", title=title)

    path = default_output_path(tdd, "TID", tmp_path / "out")

    assert path.parent == tmp_path / "out"
    assert path.name.startswith("001_FTID|")
    assert len(path.name.encode()) <= 200


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CON", "CON_"),
        ("con.md", "con_.md"),
        ("Lpt9.txt", "Lpt9_.txt"),
        ("COM1.tar.gz", "COM1_.tar.gz"),
        ("NUL .md", "NUL_.md"),
        ("CONSOLE.md", "CONSOLE.md"),
        ("../x.md", "_x.md"),
        ("/etc/passwd", "_etc_passwd"),
        (" .hidden. ", "hidden"),
        ("a|b.md", "a|b.md"),
        ("..", "untitled"),
        ("", "untitled"),
        (".md", "md"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_windows_mode() -> None:
    assert safe_filename('a|b<c>d:e"f?g*h.md', safe_names=True) == "a_b_c_d_e_f_g_h.md"


def test_safe_filename_caps_bytes_without_splitting_characters() -> None:
    name = safe_filename("é" * 300 + ".md")

    assert len(name.encode()) <= 200
    assert name.endswith(".md")
    assert set(name[:-3]) == {"é"}


# --- atomic writes --------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_creates_parents_and_writes(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "002_FTID|X.md"

    write_atomic(path, "# TID\nçà\n")

    assert path.read_text(encoding="utf-8") == "# TID\nçà\n"
    assert _leftovers(path.parent) == []


def test_write_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.md"
    path.write_text("old")

    with pytest.raises(InputError, match="exists; pass --force to overwrite") as info:
        write_atomic(path, "new")

    assert path.read_text() == "old"
    assert info.value.exit_code == 2


def test_force_overwrites_and_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "out.md"
    path.write_text("old")
    path.chmod(0o640)

    write_atomic(path, "new", force=True)

    assert path.read_text() == "new"
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_new_files_follow_the_umask(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "out.md"

    write_atomic(path, "x")

    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_write_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        write_atomic(tmp_path, "x", force=True)


def test_write_under_a_file_is_an_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")

    with pytest.raises(InputError, match="cannot create"):
        write_atomic(blocker / "out.md", "x")


def test_a_failed_rename_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.md"
    path.write_text("old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(write.os, "replace", broken_replace)

    with pytest.raises(InputError, match="No space left on device"):
        write_atomic(path, "new " * 1000, force=True)

    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_write_failing_midway_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.md"

    def broken_fsync(fd: int) -> None:
        # The data is already in the temp file: this is a failure after a partial write.
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(write.os, "fsync", broken_fsync)

    with pytest.raises(InputError, match="Input/output error"):
        write_atomic(path, "partial " * 1000)

    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_midway_leaves_nothing_and_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.md"

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(write.os, "fsync", interrupted)

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "x")

    assert list(tmp_path.iterdir()) == []


class _Record(BaseModel):
    model: str
    tokens: int


def test_write_json_model_and_overwrite_by_default(tmp_path: Path) -> None:
    path = tmp_path / "run" / "record.json"

    write_json_atomic(path, _Record(model="fake", tokens=1))
    write_json_atomic(path, _Record(model="fake", tokens=2))

    assert json.loads(path.read_text()) == {"model": "fake", "tokens": 2}
    assert path.read_text().endswith("}\n")


def test_write_json_plain_objects(tmp_path: Path) -> None:
    path = tmp_path / "record.json"

    write_json_atomic(path, {"path": Path("a/b.md"), "items": [_Record(model="m", tokens=3)]})

    assert json.loads(path.read_text()) == {
        "path": str(Path("a/b.md")),
        "items": [{"model": "m", "tokens": 3}],
    }


def test_write_json_can_refuse_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.write_text("{}")

    with pytest.raises(InputError, match="exists"):
        write_json_atomic(path, {"a": 1}, force=False)
