"""List items and paragraphs that repeat, copy the prompt or start mid-sentence are left out."""

from __future__ import annotations

from agent.core.templates import Section
from agent.document.echoes import drop_echoes, echoes, fragment

GUIDANCE = (
    "Exactly four bullets, each starting with its label in bold: **Design Patterns** "
    "(which pattern, in which class or module), **Code Organization** (modules and what "
    "each holds), **Naming Conventions** (rules with real examples from this feature)."
)
SECTION = Section.model_validate(
    {
        "id": "strategy",
        "title": "Strategy",
        "guidance": "How the team will build this feature.",
        "parts": [
            {
                "id": "patterns",
                "title": "Coding Patterns",
                "kind": "list",
                "guidance": GUIDANCE,
                "max_items": 4,
                "max_chars": 1200,
            },
            {
                "id": "notes",
                "title": "Notes",
                "kind": "text",
                "guidance": (
                    "Why the design patterns matter, in which class or module each applies."
                ),
                "max_chars": 600,
            },
        ],
    }
)
# What Qwen2.5-Coder-1.5B wrote for the TID's Coding Patterns, four times over.
ECHO = (
    "The team will use the following coding patterns: **Design Patterns** (which pattern, "
    "in which class or module), **Code Organization** (modules and what each holds), "
    "**Naming Conventions** (rules with real examples from this feature)."
)
GOOD = "**Design Patterns**: `RetryPolicy` is a strategy object that `DeliveryService` holds."


def test_copied_guidance_repeats_and_fragments_are_left_out_with_notes() -> None:
    content = {"patterns": [GOOD, ECHO, "them)", GOOD + " ", ECHO], "notes": "Fine."}
    out, notes = drop_echoes(SECTION, content)
    assert out["patterns"] == [GOOD]
    assert notes == [
        "patterns item 2: copied from the instructions; left out",
        "patterns item 3: a piece of a sentence; left out",
        "patterns item 4: the same as an item before it; left out",
        "patterns item 5: the same as an item before it; left out",
    ]


def test_a_list_with_nothing_of_its_own_says_so() -> None:
    out, _ = drop_echoes(SECTION, {"patterns": [ECHO, ECHO], "notes": "Fine."})
    assert out["patterns"] == [
        "*The model's text for Coding Patterns repeated itself or its instructions, not the "
        "TDD, and was left out.*"
    ]


def test_a_paragraph_copied_from_the_guidance_is_left_out() -> None:
    copied = "Why the design patterns matter, in which class or module each applies."
    notes_text = f"The patterns are real.\n\n{copied}"
    out, notes = drop_echoes(SECTION, {"patterns": [GOOD], "notes": notes_text})
    assert out["notes"] == "The patterns are real."
    assert notes == ["notes: copied from the instructions; left out"]


def test_what_the_model_wrote_itself_stays() -> None:
    # A label from the guidance followed by the model's own content is not an echo.
    own = (
        "**Design Patterns** (which pattern, in which class or module): a strategy object, "
        "`RetryPolicy`, held by `DeliveryService` and swapped in tests for a fixed clock and "
        "a fake transport so retries run instantly."
    )
    assert not echoes(own, GUIDANCE)
    assert echoes(ECHO, GUIDANCE)
    # Lower-case items are fine; one that closes a bracket it never opened is a piece.
    assert not fragment("queue the event (with its key)")
    assert fragment("piece joins the existing system incrementally), **Risk Mitigation**")
    content = {"patterns": [GOOD, own, "queue the event"], "notes": "Fine."}
    assert drop_echoes(SECTION, dict(content)) == (content, [])
