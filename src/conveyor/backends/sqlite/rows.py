"""How rows of the jobs and events tables become conveyor's records.

`JOB_FIELDS` is the one list of a job's columns, in `Job`'s field order, with how each
value is read and what a job that was just stored holds there. Adding a field to `Job`
is one line here (plus its column in schema.sql and, if enqueue sets it, in the enqueue
block of queries.sql and `INSERTED`). Every query that returns jobs selects
`JOB_COLUMNS`, and every job is built by `job()` (or `new_job()`, which fills a row
from what enqueue inserted and hands it to `job()`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ...errors import InvalidRequestError
from ...jobs import Event, Job, JobState
from ...serialization import loads

STATES = {state.value: state for state in JobState}


def _json(text: str | None) -> Any:
    # most rows hold empty or absent values; skip the decoder for those
    if text is None:
        return None
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return orjson.loads(text)


def _dict(text: str | None) -> Any:
    return {} if text is None else orjson.loads(text)


INSERTED = object()  # a column enqueue writes (see INSERTED_COLUMNS)

# (column = Job field, how its stored value is read (None: as it is), a new job's value)
JOB_FIELDS: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...] = (
    ("id", None, INSERTED),
    ("queue", None, INSERTED),
    ("task", None, INSERTED),
    ("args", _json, INSERTED),
    ("kwargs", _json, INSERTED),
    ("state", STATES.__getitem__, INSERTED),
    ("priority", None, INSERTED),
    ("key", None, INSERTED),
    ("attempt", None, 0),
    ("max_attempts", None, INSERTED),
    ("stalls", None, 0),
    ("max_stalls", None, INSERTED),
    ("timeout", None, INSERTED),
    ("backoff", _json, INSERTED),
    ("meta", _json, INSERTED),
    ("progress", _json, None),
    ("result", _json, None),
    ("errors", _json, "[]"),
    ("logs", _json, "[]"),
    ("created_at", None, INSERTED),
    ("scheduled_at", None, INSERTED),
    ("started_at", None, None),
    ("finished_at", None, None),
    ("worker", None, None),
    ("cancel_requested", bool, 0),
    ("flow_id", None, None),
    ("parents", _dict, None),
    ("waits", None, 0),
)

# What every job query selects: seq first (list cursors), the lease token last (claims).
JOB_COLUMNS = ", ".join(["seq", *(name for name, _, _ in JOB_FIELDS), "token"])
TOKEN = len(JOB_FIELDS) + 1  # the token's position in a selected row
# The order of the enqueue block's columns (queries.sql), pinned by a test.
INSERTED_COLUMNS = tuple(name for name, _, new in JOB_FIELDS if new is INSERTED)

_DECODE = tuple((i, decode) for i, (_, decode, _) in enumerate(JOB_FIELDS) if decode)
_END = len(JOB_FIELDS) + 1
# for each field of a new job: its place in an enqueue row, or -1 and its fixed value
_NEW = tuple((INSERTED_COLUMNS.index(name), None) if new is INSERTED else (-1, new)
             for name, _, new in JOB_FIELDS)


def job(row: Sequence[Any]) -> Job:
    """A selected row (`JOB_COLUMNS`) as a Job."""
    values = list(row[1:_END])
    for i, decode in _DECODE:
        values[i] = decode(values[i])
    return Job(*values)


def new_job(inserted: Sequence[Any]) -> Job:
    """A job enqueue just stored, from the values it inserted (`INSERTED_COLUMNS`)."""
    return job([None, *[inserted[i] if i >= 0 else value for i, value in _NEW]])


def event(row: Sequence[Any]) -> Event:
    return Event(id=row[0], job_id=row[1], queue=row[2], kind=row[3], data=loads(row[4]),
                 at=row[5])


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "seq" or not value.isdigit():
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError(f"bad cursor {cursor!r}") from None
