"""The command line: `tidsmith generate|batch|review|check|update|chat|ask|eval|templates|mcp`.

The top layer: it parses arguments and hands each command to its front end or
pipeline function. Nothing in tidsmith imports it. `main` is the entry point
(`agent.cli.main:run`), `parser` the declarative table of commands and flags,
one module per command family (`generate`, `batch`, `review`, `evaluate`,
`templates`, `front_ends` for chat/ask/mcp, `drift` for check/update),
`progress` the terminal progress display, `common` and `exits` what they share.
Every module here except `progress` is imported for `--help`, so each imports
the pipeline, providers and rich only inside the functions that use them.
"""
