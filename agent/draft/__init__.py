"""The draft stage: prompts, one structured-output call per section, checkpoints.

`plan` builds each section's messages, `calls` makes and validates one
structured call (re-asking by cause), `sections` drafts every section with
them, `repair` fixes cut strings and broken code, `checkpoint` saves every
validated section.
Imports core, providers and document; never a later stage or a front end.
"""
