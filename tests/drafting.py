"""Drafting one section of a real template from a TDD text, on a fake provider.

For tests of what code does to a validated reply with what the TDD gives
(`SectionFacts`): the plan is built as a run builds it, and the section is
drafted with the plan's facts, as `draft_all` drafts it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agent.core.tdd import load_tdd
from agent.core.templates import get_template
from agent.draft.plan import SectionDraft, plan_messages
from agent.draft.sections import draft_section
from agent.providers.fake import FakeProvider


def draft_from_tdd(
    folder: Path,
    tdd: str,
    template_name: str,
    section_id: str,
    reply: dict[str, Any],
    *,
    pins: dict[str, str] | None = None,
) -> SectionDraft:
    """`section_id` of `template_name` drafted from `tdd`, the model replying `reply`."""
    path = folder / "001_FTDD|Relay.md"
    path.write_text(tdd, encoding="utf-8")
    template = get_template(template_name)
    plan = plan_messages(
        template, load_tdd(path), FakeProvider([]), max_tokens=1000, schema_in_text=False, pins=pins
    )
    section = template.section(section_id)
    return asyncio.run(
        draft_section(
            FakeProvider([json.dumps(reply)]),
            template,
            section,
            plan.requests[section.id],
            max_tokens=1000,
            facts=plan.facts(section.id),
        )
    )
