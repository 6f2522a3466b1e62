"""The chat front end: a terminal conversation that drafts, revises and reviews.

`intent` reads a request, `state` holds the conversation and the document's
versions, `edits` rebuilds the document after a change, `commands` carries out
each action, `terminal` reads lines (completion, Ctrl-C, the REPL), and
`session` routes lines to actions and holds the `chat`/`ask` entry points.
Imported only by `agent.cli`; must not import the cli.
"""
