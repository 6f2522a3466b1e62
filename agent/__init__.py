"""tidsmith: a TDD in, a TID or Implementation Spec out.

The public API, imported lazily so `tidsmith --help` stays fast:

    from agent import generate
    doc = generate("0xcc/tdds/002_FTDD|Model_Management.md", template="tid", model="local")
    print(doc.path, doc.record.totals)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
    from agent.config import Settings
    from agent.pipeline import Document, agenerate, generate
    from agent.runnable import as_runnable
    from agent.templates import Template, get_template

_LAZY = {
    "Document": "agent.pipeline",
    "agenerate": "agent.pipeline",
    "generate": "agent.pipeline",
    "as_runnable": "agent.runnable",
    "Settings": "agent.config",
    "Template": "agent.templates",
    "get_template": "agent.templates",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
