"""The command line: `tidsmith generate|batch|review|check|update|chat|eval|mcp`.

The top layer: it parses arguments and hands each command to its front end or
pipeline function. Nothing in tidsmith imports it.
"""
