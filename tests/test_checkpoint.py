"""Section checkpoints: keyed by the exact request, loaded instead of calling the model."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.core.records import Event
from agent.core.tdd import load_tdd
from agent.core.templates import get_template
from agent.draft.checkpoint import SectionCheckpoint, section_key
from agent.draft.plan import plan_messages
from agent.draft.sections import draft_all
from agent.providers.base import Message
from agent.providers.fake import FakeProvider

FIXTURE = Path(__file__).parent / "fixtures" / "0xcc" / "tdds" / "001_FTDD|Billing_Export.md"


def key(**change: object) -> str:
    base: dict[str, object] = {
        "model": "openai:gpt-4.1-mini",
        "max_tokens": 1800,
        "prompt": "draft_section 1",
        "template": "tid 1.0",
        "section_id": "overview",
        "schema": {"type": "object"},
        "messages": [Message(role="system", content="TDD text")],
    }
    base.update(change)
    return section_key(**base)  # type: ignore[arg-type]


def test_the_key_changes_with_everything_the_request_depends_on() -> None:
    variants = [
        key(),
        key(model="openai:gpt-4.1"),
        key(max_tokens=1000),
        key(prompt="draft_section 2"),
        key(template="tid 1.1"),
        key(section_id="testing"),
        key(schema={"type": "object", "properties": {}}),
        key(messages=[Message(role="system", content="TDD text, edited")]),
    ]
    assert len(set(variants)) == len(variants)
    assert key() == key()


def draft(provider: FakeProvider, checkpoint: SectionCheckpoint, events: list[Event]) -> list[str]:
    template = get_template("tid")
    plan = plan_messages(
        template, load_tdd(FIXTURE), provider, max_tokens=800, schema_in_text=False
    )
    drafts = asyncio.run(
        draft_all(
            provider,
            template,
            plan,
            concurrency=3,
            max_tokens=800,
            on_event=events.append,
            checkpoint=checkpoint,
        )
    )
    return [d.section_id for d in drafts]


def test_saved_sections_are_loaded_and_only_missing_ones_are_requested(tmp_path: Path) -> None:
    template = get_template("tid")
    store = SectionCheckpoint(tmp_path / "ckpt")
    first = FakeProvider()
    order = draft(first, store, [])
    assert len(first.requests) == len(template.sections) == store.saved
    # Lose two sections, as an interrupted run would not have saved them.
    (tmp_path / "ckpt" / f"{order[2]}.json").unlink()
    (tmp_path / "ckpt" / f"{order[7]}.json").unlink()
    again = FakeProvider()
    events: list[Event] = []
    assert draft(again, SectionCheckpoint(tmp_path / "ckpt"), events) == order
    assert sorted(r.label for r in again.requests) == sorted([order[2], order[7]])
    assert sum(e.resumed for e in events if e.kind == "done") == len(order) - 2


def test_a_different_model_does_not_reuse_checkpoints(tmp_path: Path) -> None:
    store = SectionCheckpoint(tmp_path / "ckpt")
    draft(FakeProvider(model="a"), store, [])
    other = FakeProvider(model="b")
    draft(other, SectionCheckpoint(tmp_path / "ckpt"), [])
    assert len(other.requests) == len(get_template("tid").sections)


def test_an_unreadable_checkpoint_is_ignored(tmp_path: Path) -> None:
    store = SectionCheckpoint(tmp_path)
    (tmp_path / "overview.json").write_text("{not json", encoding="utf-8")
    assert store.load("overview", key()) is None
