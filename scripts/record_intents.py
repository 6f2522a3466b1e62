"""Record real model replies to chat requests that code cannot read by itself.

    uv run python scripts/record_intents.py BASE_URL MODEL_NAME cassettes/chat-intent.yaml

Each request in REQUESTS goes through `agent.chat.intent.ask_model` (one structured
call, OpenAI protocol) against the server at BASE_URL, inside a cassette.
tests/test_intent.py replays the cassette with the network blocked and checks
what `interpret` makes of each recorded reply. Run by scripts/record-cassettes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.chat.intent import IntentContext, ask_model  # noqa: E402
from agent.draft.prompting import load_prompt  # noqa: E402
from agent.pipeline.recording import cassette  # noqa: E402
from agent.providers import open_provider  # noqa: E402

# Requests the pre-parse leaves to the model (none says "create" with a TID/Spec or a path).
# The small recorded model gets its schema fitted to max_tokens (docs/providers.md).
STRUCTURED = "json-schema"

REQUESTS = [
    "I'd like the implementation doc for billing export",
    "what has this cost me so far?",
    "switch to the spec template",
    "make section 2 mention the test utilities",
    "write it to out/billing.md",
    "do the audit log one next",
]
# What the session tells the model (tests/test_intent.py uses the same).
CONTEXT = IntentContext(
    tdds=["0xcc/tdds/001_FTDD|Billing_Export.md", "0xcc/tdds/002_FTDD|Audit_Log.md"],
    loaded="0xcc/tdds/001_FTDD|Billing_Export.md",
    template="tid",
    sections=["1. Implementation Strategy", "2. Code Structure", "3. Key Algorithms"],
)


async def main(base_url: str, model: str, path: Path) -> None:
    # As `generate` builds it, so the requests match what the test replays.
    provider = await open_provider(
        f"openai:{model}", base_url=base_url, timeout=600, structured=STRUCTURED
    )
    scratch = path.with_name(f".{path.name}.recording")
    scratch.unlink(missing_ok=True)
    try:
        with cassette(scratch, "new"):
            for text in REQUESTS:
                intent, record = await ask_model(provider, text, CONTEXT)
                print(f"{text!r} -> {intent.model_dump(exclude_defaults=True)}", file=sys.stderr)
                print(f"  {record.latency_s:.1f}s, {record.output_tokens} tokens", file=sys.stderr)
    finally:
        await provider.aclose()
    scratch.replace(path)
    meta = {
        "model": f"openai:{model}",
        "prompts": {"chat_intent": load_prompt("chat_intent").version},
    }
    path.with_name(path.name + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
