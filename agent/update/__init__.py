"""The update stage: re-draft only the sections a TDD change affects.

Imports core, providers, document, draft and check; never the pipeline or a front end.
"""
