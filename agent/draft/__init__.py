"""The draft stage: prompts, one structured-output call per section, checkpoints.

`plan` builds each section's messages, `sections` makes and validates the
calls (re-asking by cause), `checkpoint` saves every validated section.
Imports core, providers and document; never a later stage or a front end.
"""
