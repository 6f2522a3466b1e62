"""`python -m agent` is the `tidsmith` command."""

from agent.cli import run

run()
