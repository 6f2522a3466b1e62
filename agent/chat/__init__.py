"""The chat front end: a terminal conversation that drafts, revises and reviews.

Imported only by `agent.cli`.
"""
