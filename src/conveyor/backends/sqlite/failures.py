"""What SQLite's errors mean to a caller: each becomes a ConveyorError that says so.

A full disk is `StorageFullError` (nothing was written; free space and retry). A database
that cannot be written or read at all (read-only file or mount, I/O error, a file that
cannot be opened, a closed connection) is `BackendUnavailableError`: the caller retries
later, the HTTP API answers 503, /readyz reports not ready. Anything else SQLite raises
(a corrupt file, a bug) is `BackendError`. The lock being held ("database is locked") is
not an error here: the store waits for it (see store.py).
"""

from __future__ import annotations

import sqlite3

from ...errors import BackendError, BackendUnavailableError, StorageFullError

# primary result codes (https://sqlite.org/rescode.html): the low byte of an extended code
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_NOMEM = 7
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_PROTOCOL = 15
SQLITE_NOTADB = 26

_UNAVAILABLE = {
    SQLITE_PERM: "is not permitted",
    SQLITE_READONLY: "is read-only",
    SQLITE_IOERR: "had an I/O error",
    SQLITE_CANTOPEN: "cannot be opened",
    SQLITE_PROTOCOL: "had a locking protocol error",
}


def is_busy(exc: sqlite3.Error) -> bool:
    """The write lock is held by another connection: wait and try again."""
    code = _primary(exc)
    if code is not None:
        return code in (SQLITE_BUSY, SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


def conveyor_error(exc: sqlite3.Error, path: str) -> BackendError:
    """The ConveyorError to raise for a SQLite error on the database at `path`."""
    code = _primary(exc)
    detail = f"{exc} ({getattr(exc, 'sqlite_errorname', type(exc).__name__)})"
    if code == SQLITE_FULL:
        return StorageFullError(
            f"{path}: the disk is full, nothing was written ({detail}); free space (a WAL "
            "database needs room beyond its own size to checkpoint) and try again")
    if code in _UNAVAILABLE:
        return BackendUnavailableError(f"{path} {_UNAVAILABLE[code]}: {detail}")
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        return BackendUnavailableError(f"{path} is not open: {exc}")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return BackendError(f"{path} is damaged or not a database: {detail}")
    return BackendError(f"{path}: sqlite error: {detail}")


def _primary(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF
