"""`python -m agent` is the `tidsmith` command."""

from agent.cli.main import run

run()
