"""The document as text: assembling sections into markdown, its lints, its integrity.

No model calls. Imports `agent.core` and `agent.providers` (grammar bounds)
only; the drafting and review stages build on it.
"""
