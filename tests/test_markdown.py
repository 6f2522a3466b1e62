"""The markdown layer: headings with line ranges, fences, tables, links, the code mask."""

from __future__ import annotations

import subprocess
import sys

from agent.core import markdown

DOC = """# Title

Intro with [a PRD](../prds/001_FPRD|X.md) and `[not](code)`.

Setext
------

- step

  ```python
  x = 1
  ```

| Name | Version |
|------|---------|
| fastapi | 0.110.0 |

> ## Quoted, not a section

~~~bash
echo unclosed
"""


def test_headings_have_line_ranges_up_to_the_next_heading() -> None:
    headings = markdown.parse(DOC).headings
    assert [(h.level, h.title, h.line, h.end, h.body) for h in headings] == [
        (1, "Title", 0, 4, 1),
        (2, "Setext", 4, 21, 6),
    ]


def test_fences_carry_language_code_lines_and_whether_they_close() -> None:
    fences = markdown.parse(DOC).fences
    assert [(f.language, f.code, f.line, f.end, f.closed) for f in fences] == [
        ("python", "x = 1\n", 9, 12, True),
        ("bash", "echo unclosed\n", 19, 21, False),
    ]


def test_tables_and_links() -> None:
    parsed = markdown.parse(DOC)
    assert [(t.header, t.rows) for t in parsed.tables] == [
        (("Name", "Version"), (("fastapi", "0.110.0"),))
    ]
    assert [(link.text, link.target, link.line) for link in parsed.links] == [
        ("a PRD", "../prds/001_FPRD|X.md", 2),
        ("not", "code", 2),
    ]


def test_the_code_mask_with_and_without_fence_lines() -> None:
    text = "a\n```\ncode\n```\nb\n"
    parsed = markdown.parse(text)
    assert parsed.code_mask() == [False, True, True, True, False]
    assert parsed.code_mask(delimiters=False) == [False, False, True, False, False]


def test_a_text_is_parsed_once() -> None:
    assert markdown.parse(DOC) is markdown.parse(DOC)


def test_importing_the_tdd_loader_does_not_import_markdown_it() -> None:
    code = "import sys, agent.core.tdd; print('markdown_it' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lines_are_counted_as_str_splitlines_counts_them() -> None:
    # markdown-it ends lines only at \n and \r; callers index `str.splitlines` lines.
    text = "# A\u2028still A\n\n```python\nx = 1\x0cy\n```\n\n## B\n"
    parsed = markdown.parse(text)
    assert len(parsed.lines) == len(text.splitlines())
    assert [(h.title, h.line) for h in parsed.headings] == [("A\u2028still A", 0), ("B", 8)]
    assert [(f.line, f.end, f.closed) for f in parsed.fences] == [(3, 7, True)]
    assert parsed.code_mask(delimiters=False) == [False] * 4 + [True, True] + [False] * 3
