"""The embedded default: one SQLite file shared by the processes of one machine.

backend.py  the contract's verbs (SqliteBackend), run on the caller's thread or the
            backend's own thread when another process holds the write lock
store.py    every verb as one synchronous transaction on one connection
rows.py     how rows become jobs and events: the one list of a job's columns
wakeup.py   blocking wake-ups across processes
"""

from .backend import SqliteBackend, parse_url

__all__ = ["SqliteBackend", "parse_url"]
