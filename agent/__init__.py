"""tidsmith: a TDD in, a TID or Implementation Spec out.

The public API, imported lazily so `tidsmith --help` stays fast:

    from agent import generate
    doc = generate("0xcc/tdds/002_FTDD|Model_Management.md", template="tid", model="local")
    print(doc.path, doc.record.totals)

The package every `tidsmith` run imports first, `--help` included: at import
time it must import only `agent.core` (for the version), never the pipeline,
a provider or an SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent.core import __version__ as __version__

__all__ = [
    "Document",
    "Settings",
    "Template",
    "agenerate",
    "as_runnable",
    "generate",
    "get_template",
]

if TYPE_CHECKING:
    from agent.core.settings import Settings
    from agent.core.templates import Template, get_template
    from agent.pipeline.generate import Document, agenerate, generate
    from agent.runnable import as_runnable

_LAZY = {
    "Document": "agent.pipeline.generate",
    "agenerate": "agent.pipeline.generate",
    "generate": "agent.pipeline.generate",
    "as_runnable": "agent.runnable",
    "Settings": "agent.core.settings",
    "Template": "agent.core.templates",
    "get_template": "agent.core.templates",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
