"""Python slips mended where the parser stops, and cut blocks left to the repair call.

The broken blocks are shaped on Qwen2.5-Coder-1.5B's recorded repair requests
(cassettes/openai-tid.yaml, 2026-12-03), where the repair call wrote each back
unchanged.
"""

from __future__ import annotations

import ast

from agent.document.mend import restore_code
from agent.document.slips import mend_slips

SKELETON = """\
class DeliveryService:
    def __init__(self, redis):
        self.redis = redis

    def enqueue(self, delivery_id):
        # Implementation of enqueue method
    def claim(self, endpoint_id):
        # Implementation of claim method
    def sweep_stalled(self):
        # Implementation of sweep_stalled method
"""


def test_a_body_of_comments_gets_an_ellipsis_under_them() -> None:
    mended = mend_slips(SKELETON)
    assert mended is not None
    ast.parse(mended)
    assert mended.count("\n        ...") == 3
    # The model's comments stay, each method keeps its own.
    assert "# Implementation of claim method\n        ...\n    def sweep_stalled" in mended


def test_a_header_with_no_body_before_the_next_statement_gets_one() -> None:
    mended = mend_slips("def enqueue(self):\ndef claim(self):\n    return 1\n")
    assert mended == "def enqueue(self):\n    ...\ndef claim(self):\n    return 1"


def test_a_stray_colon_after_a_statement_goes() -> None:
    code = "def acquire(key):\n    key = f'relay:rl:{key}':\n    return key\n"
    assert mend_slips(code) == "def acquire(key):\n    key = f'relay:rl:{key}'\n    return key"


def test_a_header_missing_its_colon_gets_it() -> None:
    code = "def build(id)\n    return id\n"
    assert mend_slips(code) == "def build(id):\n    return id"


def test_a_string_holding_its_own_quotes_is_quoted_with_the_other_kind() -> None:
    code = (
        "def claim(db, i):\n"
        "    db.execute('UPDATE t SET status = 'delivering' WHERE id IN ('a', 'b')', {'id': i})\n"
        "    return i\n"
    )
    mended = mend_slips(code)
    assert mended is not None
    assert (
        """db.execute("UPDATE t SET status = 'delivering' WHERE id IN ('a', 'b')", {'id': i})"""
        in mended
    )


def test_lost_line_breaks_and_a_slip_together_are_mended() -> None:
    one_line = (
        "def deliver(ctx, i):    # Claim    row = ctx.db.execute('UPDATE d SET s = 'x' "
        "WHERE id = :id', {'id': i})    if not row:        return 'Duplicate job'    return row"
    )
    mended = restore_code("python", one_line)
    assert mended is not None
    assert mended.split("\n")[1:3] == [
        "    # Claim",
        """    row = ctx.db.execute("UPDATE d SET s = 'x' WHERE id = :id", {'id': i})""",
    ]


def test_a_block_cut_at_its_end_is_left_to_the_repair_call() -> None:
    # Each of these stops where the model was cut off: mending would ship the cut.
    for cut in (
        "class Settings:\n    retention_days: int = 30\n    log:",
        "def build(id, url)",
        "class S:\n    def enqueue(self, i):\n        with self.db.connect() ",
        "def f():\n    x = 1\ndef g():",
        "def f():\n    return call('a', 'b', 'c', 'd",
    ):
        assert mend_slips(cut) is None, cut
        assert restore_code("python", cut) is None, cut


def test_what_is_no_slip_is_not_mended() -> None:
    assert mend_slips("x = 1\n") is None  # parses already
    assert mend_slips("x = (1,\ny = 2\nz = 3\n") is None  # a lost bracket
    # A colon that ends a header stays, even where the block breaks after it.
    assert mend_slips("if x:\n    y = = 2\nz = 1\n") is None
