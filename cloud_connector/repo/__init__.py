"""Repositories: every SQL statement of the service, grouped by table, over a storage ``Executor``."""
