"""The research stage: plan queries, search `research` sources, condense cited notes.

Sources (`research`) only find passages; this stage makes the model calls.
Imports core, providers, draft and research; never the pipeline or a front end.
"""
