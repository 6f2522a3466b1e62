"""List items and paragraphs that repeat, copy the prompt or start mid-sentence are left out."""

from __future__ import annotations

from agent.core.templates import Section
from agent.document.echoes import drop_echoes, echoes, fragment, join_split_items, once_through

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
        "*The model's text for Coding Patterns repeated itself or its instructions, or named "
        "nothing from the TDD, and was left out.*"
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
    content = {"patterns": [GOOD, own], "notes": "Fine."}
    assert drop_echoes(SECTION, dict(content)) == (content, [])


# The shape of what Qwen2.5-Coder-1.5B wrote for Coding Patterns under tid 1.5:
# one sentence three times over in each bullet (it named nothing; here it does).
LOOP = (
    "The team will use `RetryPolicy` as a strategy. `RetryPolicy` will be used by the "
    "worker. `RetryPolicy` will be used by the worker."
)


def test_a_sentence_given_twice_is_kept_once_across_the_items_of_a_list() -> None:
    content = {"patterns": [LOOP, "`RetryPolicy` will be used by the worker."]}
    out, notes = drop_echoes(SECTION, {**content, "notes": "Fine."})
    assert out["patterns"] == [
        "The team will use `RetryPolicy` as a strategy. `RetryPolicy` will be used by the worker."
    ]
    assert notes == [
        "patterns item 1: a sentence given twice; kept once",
        "patterns item 2: only sentences given before; left out",
    ]


def test_a_labelled_items_text_given_under_another_label_before_is_left_out() -> None:
    # The Spec's Security, recorded 2026-12-03: one answer under three labels.
    said = "Secrets are derived and never stored in the database."
    content = {
        "patterns": [
            f"**At Rest**: {said}",
            f"**In Transit**: {said}",
            f"Sensitive Data: {said} Tokens are never logged.",
            "Unit: pytest.",
            "Integration: pytest.",  # short: another label's answer too
        ],
        "notes": "Fine.",
    }
    out, notes = drop_echoes(SECTION, content)
    assert out["patterns"] == [
        f"**At Rest**: {said}",
        "Sensitive Data: Tokens are never logged.",
        "Unit: pytest.",
        "Integration: pytest.",
    ]
    assert notes == [
        "patterns item 2: only sentences given before; left out",
        "patterns item 3: a sentence given twice; kept once",
    ]


def test_a_sentence_given_twice_in_prose_is_kept_once_but_code_is_not_touched() -> None:
    prose = "It retries. It retries. It gives up after 8 attempts."
    out, notes = drop_echoes(SECTION, {"patterns": [GOOD], "notes": f"{prose}\n\nIt retries."})
    assert out["notes"] == "It retries. It gives up after 8 attempts."
    assert notes == ["notes: a sentence given twice; kept once"]
    # Inside a fence, lines split at blank lines are code, however often they repeat.
    code = "Example:\n\n```python\nx = 1\n\npass\n\npass\n```"
    assert drop_echoes(SECTION, {"patterns": [GOOD], "notes": code})[0]["notes"] == code


def test_in_a_labelled_list_a_lower_case_item_without_a_label_is_a_piece() -> None:
    # The Spec recording's Testing Strategy (spec 1.3): two ends of items, given alone.
    items = [
        "Coverage: 85% for `relay/delivery/`.",
        "Unit: `RetryPolicy` with seeded `random.Random`, `Signer` against fixed vectors.",
        "classification.",
        "**Integration**: testcontainers PostgreSQL 16 and Redis 7.",
        "clock runs all 8 attempts in one test.",
    ]
    out, notes = drop_echoes(SECTION, {"patterns": items, "notes": "Fine."})
    assert out["patterns"] == [items[0], items[1], items[3]]
    assert notes == [
        "patterns item 3: a piece of a sentence; left out",
        "patterns item 5: a piece of a sentence; left out",
    ]
    # Outside a labelled list a lower-case item is the model's own way of writing.
    plain = ["queue the event", "sign the body", "Post it."]
    assert drop_echoes(SECTION, {"patterns": plain, "notes": "Fine."})[0]["patterns"] == plain


def test_an_item_about_the_tdd_that_names_nothing_from_it_is_left_out() -> None:
    # What Qwen2.5-Coder-1.5B wrote under tid 1.5 for "Order of Implementation".
    empty = "The team will use the TDD's components to build the feature first and next."
    named = [
        "Build `Signer` first, as the TDD orders it.",
        "The TDD puts PostgreSQL first.",
        "The TDD caps retries at 8 attempts.",
        "Start with config.py, as the TDD says.",
        "The team will build the feature test-first.",  # says nothing of the TDD: kept
        # The answer the Spec's API and CLI sections ask for in those words.
        "Not applicable: No CLI defined in the TDD.",
    ]
    out, notes = drop_echoes(SECTION, {"patterns": [empty, *named], "notes": "Fine."})
    assert out["patterns"] == named
    assert notes == ["patterns item 1: about the TDD, naming nothing from it; left out"]


def test_an_item_that_reads_back_the_names_the_ask_listed_is_left_out() -> None:
    # The ask lists the section's TDD names; Qwen2.5-Coder-1.5B gave them back in order.
    names = (
        "`RetryPolicy`, `PostgreSQL`, `bench_worker.py`, `DeliveryService`, `EventIn`, `FastAPI`"
    )
    ask = f"Write the section.\nNames from the TDD this section is likely to need: {names}."
    read_back = f"The order of implementation will be: {names}."
    own = "Build `RetryPolicy` first, then `DeliveryService`, which calls it."
    out, notes = drop_echoes(SECTION, {"patterns": [read_back, own], "notes": "Fine."}, ask)
    assert out["patterns"] == [own]
    assert notes == ["patterns item 1: copied from the instructions; left out"]
    # Without the ask, the same item is the model's (nothing to compare it with).
    assert drop_echoes(SECTION, {"patterns": [read_back], "notes": "Fine."})[1] == []


def test_an_item_that_is_a_field_name_is_left_out() -> None:
    # The 2026-12-03 recording's Coding Patterns ended with the item "tdd_refs".
    out, notes = drop_echoes(SECTION, {"patterns": [GOOD, "tdd_refs", "`notes`"], "notes": "Fine."})
    assert out["patterns"] == [GOOD]
    assert notes == [
        "patterns item 2: a field's name, not an answer; left out",
        "patterns item 3: a field's name, not an answer; left out",
    ]


def test_an_item_or_paragraph_that_loops_on_a_phrase_is_left_out() -> None:
    # The Spec recording of 2026-12-03: the bullet's own bound, given back as a loop.
    loop = "13 words, 1 sentence, " * 6
    content = {"patterns": [GOOD, loop.strip()], "notes": f"The patterns are real.\n\n{loop}"}
    out, notes = drop_echoes(SECTION, content)
    assert out == {"patterns": [GOOD], "notes": "The patterns are real."}
    assert notes == [
        "patterns item 2: a phrase repeated in a loop; left out",
        "notes: a phrase repeated in a loop; left out",
    ]
    # Numbers in a series, and rules of one character, are no loop.
    series = "**Design Patterns**: `RetryPolicy` backs off 2 s, 4 s, 8 s, 16 s, up to 3600 s."
    assert drop_echoes(SECTION, {"patterns": [series], "notes": "=" * 30})[1] == []


def test_an_item_that_closes_a_code_span_it_never_opened_is_a_piece() -> None:
    # The end of the item before it: "... `httpx.AsyncClient(..., follow_redirects=False`."
    assert fragment("follow_redirects=False`.")
    assert not fragment("`follow_redirects=False` is set on the client.")
    assert not fragment("**In Transit**: `httpx` with `verify=True`.")


def test_a_long_run_given_twice_in_a_row_is_cut_after_its_first_copy() -> None:
    """The Spec recording's API Specification: five routes, the same five, the first again."""
    routes = (
        "POST /api/v1/events: Publish event; returns delivery IDs (202) "
        "GET /api/v1/endpoints: List endpoints "
        "DELETE /api/v1/endpoints/{id}: Delete endpoint and its deliveries"
    )
    looping = f"{routes} {routes} POST /api/v1/events: Publish event"
    assert once_through(looping) == routes + "."
    assert once_through(f"{routes}. {routes}.") == routes + "."
    whole = (
        "The worker retries a failed delivery with exponential backoff. "
        "The worker retries a failed delivery with exponential backoff later."
    )
    assert once_through(whole) == whole  # the same words, not the same run in a row
    assert once_through("= " * 60) == "= " * 60  # a rule, not a loop of words


def test_an_item_broken_in_two_is_joined_back_when_the_first_part_stops_open() -> None:
    # The Spec recording of spec 1.5: each sentence of the TDD's given as two items.
    items = [
        "Coverage: 85% for `relay/delivery/`",
        "Unit: `RetryPolicy`, `Signer` against fixed vectors, outcome ",
        "classification.",
        "Integration: testcontainers PostgreSQL 16 and Redis 7; a fake ",
        "clock runs all 8 attempts in one test.",
        "E2E: a stub receiver.",
        "done once a day.",  # after a whole item: a piece, not joined
    ]
    out, notes = join_split_items(SECTION, {"patterns": list(items), "notes": "Fine."})
    assert out["patterns"] == [
        items[0],
        "Unit: `RetryPolicy`, `Signer` against fixed vectors, outcome classification.",
        "Integration: testcontainers PostgreSQL 16 and Redis 7; a fake clock runs all 8 "
        "attempts in one test.",
        items[5],
        items[6],
    ]
    assert notes == [
        "patterns item 3: the end of the item before it; joined to it",
        "patterns item 5: the end of the item before it; joined to it",
    ]
