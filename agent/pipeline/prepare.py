"""A run's cheap checks, before any token is paid for: the TDD, template, output and cassette.

Imports `options` and `replay` only, of the pipeline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from agent.core.paths import default_output_path
from agent.core.tdd import load_tdd, require_body
from agent.core.templates import get_template
from agent.core.write import check_output
from agent.pipeline.options import GenerateOptions, PreparedRun
from agent.pipeline.replay import check_recording_target, replay_settings


async def prepare_run(tdd_path: Path, options: GenerateOptions) -> PreparedRun:
    """Load the TDD, pick the output path and check the cassette; a replay's settings applied.

    A bad TDD, template, cassette or output path fails here and costs no tokens.
    """
    # Off the event loop: a slow disk must never hold up Ctrl-C or other documents.
    tdd = require_body(await asyncio.to_thread(load_tdd, tdd_path))
    settings = options.settings
    template = options.template or get_template(settings.template)
    path = None
    if options.write:
        path = default_output_path(tdd, template.doc_kind, options.out, options.safe_names)
        check_output(path, options.force, "document")
    today = options.today
    recording = options.recording
    if recording is not None and recording.mode == "replay":
        settings, recorded_on = replay_settings(
            recording, tdd, template, settings, options.research
        )
        today = today or recorded_on
    elif recording is not None:
        check_recording_target(recording, options.force)
    return PreparedRun(
        tdd=tdd,
        template=template,
        path=path,
        out_dir=path.parent if path is not None else Path.cwd(),
        settings=settings,
        today=today or dt.date.today().isoformat(),
        recording=recording,
        research=options.research,
    )
