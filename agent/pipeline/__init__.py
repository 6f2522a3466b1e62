"""The pipeline: a generate run as a sequence of stages, and the runs built on it.

`generate` (one TDD), `batch` (a folder, live), `provider_batch` (a folder,
through a vendor batch API), the run record and cassette recording. Imports
every stage; only front ends import it.
"""
