"""Each backend's one list of a job's fields covers `Job` exactly, in its order, and
agrees with what the storage side writes and reads (the SQL enqueue block, the Lua claim)."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources

from conveyor.backends.redis import codec
from conveyor.backends.sqlite import rows
from conveyor.jobs import Job

JOB = tuple(f.name for f in dataclasses.fields(Job))


def test_the_sqlite_field_list_is_job_in_order() -> None:
    assert tuple(name for name, _, _ in rows.JOB_FIELDS) == JOB


def test_the_sqlite_enqueue_block_inserts_the_listed_columns_in_order() -> None:
    sql = resources.files("conveyor.backends.sqlite").joinpath("queries.sql").read_text()
    block = sql.split("-- name: enqueue\n", 1)[1].split("-- name:", 1)[0]
    match = re.search(r"INSERT INTO jobs \(([^)]*)\)", block)
    assert match is not None
    assert tuple(c.strip() for c in match.group(1).split(",")) == rows.INSERTED_COLUMNS


def test_the_redis_field_list_is_job_in_order() -> None:
    assert tuple(name for name, _, _ in codec.JOB_FIELDS) == JOB


def test_the_redis_claim_fields_are_what_fetch_lua_reads() -> None:
    lua = resources.files("conveyor.backends.redis").joinpath("lua/includes/queue.lua")
    match = re.search(r"local CLAIM_FIELDS = \{([^}]*)\}", lua.read_text())
    assert match is not None
    assert tuple(re.findall(r"'([a-z_]+)'", match.group(1))) == codec.CLAIM_FIELDS
