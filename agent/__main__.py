"""`python -m agent` is the `tidsmith` command; it imports only the cli's entry point."""

from agent.cli.main import run

run()
