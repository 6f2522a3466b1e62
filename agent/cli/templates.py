"""The `templates` command: list the built-in templates, or validate and describe one file.

Imported at `--help` time (through the parser), so the templates (yaml, pydantic)
are imported inside the command, when it runs.
"""

from __future__ import annotations

import argparse
import sys


def cmd_templates(args: argparse.Namespace) -> int:
    # Lazy: templates load yaml and pydantic, which `--help` does without.
    from agent.core.templates import builtin_names, get_template, load_template_file
    from agent.pipeline.summary import dumps, template_summary

    templates = (
        [load_template_file(args.path)]
        if args.path is not None
        else [get_template(n) for n in builtin_names()]
    )
    if args.json:
        sys.stdout.write(dumps([template_summary(t) for t in templates]))
        return 0
    for t in templates:
        words = f", at most {t.max_words} words" if t.max_words else ""
        print(f"{t.name} {t.version}: {t.title}{words} ({t.source})")
        print(f"  {t.description}")
        for s in t.sections:
            number = t.number(s.id)
            label = f"{number}. {s.title}" if number is not None else s.title
            print(f"    {label}: " + ", ".join(p.title for p in s.parts))
        if t.checklist:
            print(f"  checklist: {len(t.checklist)} items")
    return 0
