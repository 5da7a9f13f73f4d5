"""Ingest: parsing, validation, findings, submissions, the registry import and (later) the work queue.

Everything that arrives from outside passes through here before it reaches the store.
May import `cldx.standard`, `cldx.store`, `cldx.identity` and `cldx.access`.
"""
