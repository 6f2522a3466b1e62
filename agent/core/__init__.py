"""Shared values, rules and I/O: errors, settings, files, the TDD and template models.

The bottom layer: every other part of tidsmith may import it; it imports
nothing of tidsmith outside `agent.core`.
"""

__version__ = "0.1.0"
