"""The pipeline: a generate run as a sequence of stages, and the runs built on it.

`generate` runs one TDD: `prepare` (cheap checks, a replay's settings) →
`stages` (research, plan, draft, review) → `outputs` (assemble, write) with
`record` (the run record) and `replay`/`recording` (cassettes); `options`
holds the values they share. `batch` runs a folder live (`batch_plan`,
`estimate`, `budget`, `call_slots`); `provider_batch` drafts a folder through
a vendor batch API (`provider_batch_jobs`, `provider_batch_state`). `actions`
and `summary` serve the front ends. Imports every stage; only front ends
import it.
"""
