-- conveyor's embedded data model (SQLite, WAL mode).
--
-- jobs          one row per job; `state` drives everything. Times are ms since the epoch
--               from SQLite's own clock. `token` + `lease_expires_at` are the running
--               attempt's lease; a settle must present the token.
-- events        the resumable stream: every state change, progress report and log line,
--               with a strictly growing id. Pruning never removes the newest row, so ids
--               are never reused (cheaper than AUTOINCREMENT). Triggers write the state
--               and progress events, so no transition can forget one (enqueue writes
--               the first event of its batch in the same transaction). There is no index
--               by job: readers follow one job by scanning forward from a recent id.
-- queues        queues that were paused at least once (a queue exists by having jobs).
-- workers       live worker processes, refreshed by their heartbeat.
-- locks         named leases for leadership (maintenance, cron).
-- tombstones    ids of removed jobs, so a lookup can say "gone" instead of "unknown".
-- flow_edges    flows (conveyor/flows, sqlite/dependencies.py): one row per dependency,
--               parent -> child with the edge's failure policy and whether it is resolved
--               (the parent completed, or failed through a "continue" edge). A job's
--               `dependents` flag (NULL for most jobs) is what lets the triggers below skip
--               every job that has none; `waits` counts its unresolved dependencies.
-- flow_*        flow control (conveyor/flow, sqlite/flow.py), all per queue:
--   flow_limits   limiter -> the limit declared in code and the runtime override
--   flow_groups   flow groups with waiting jobs: their turn (rot, round robin) and, when
--                 the claim found them blocked, until when (rate, pause) or on which
--                 concurrency slot they are parked (freed by the job that releases it)
--   flow_starts   the sliding-window log: one row per start of a job through a rated gate
--   flow_pauses   (limiter, key) paused until a time by a task's RateLimited
--   flow_slots    (limiter, key) -> jobs active through it; the claim adds, the trigger
--                 flow_slot_freed takes away whenever such a job leaves `active`, in the
--                 same transaction as the settle, rescue or release that moves it
-- jobs.dedup       a dedup mode's key ("<task>:<key>", conveyor/dedup.py): enqueue folds
--                  into the newest job holding it, judged by that job's state (dedup.py)
-- jobs.expires_at  not started by then: the claim's transaction cancels it ("expired")

CREATE TABLE IF NOT EXISTS jobs (
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    queue            TEXT    NOT NULL,
    task             TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    kwargs           TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    key              TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    stalls           INTEGER NOT NULL DEFAULT 0,
    max_stalls       INTEGER NOT NULL,
    timeout          REAL,
    backoff          TEXT,
    meta             TEXT    NOT NULL DEFAULT '{}',
    progress         TEXT,
    result           TEXT,
    errors           TEXT    NOT NULL DEFAULT '[]',
    logs             TEXT    NOT NULL DEFAULT '[]',
    created_at       INTEGER NOT NULL,
    scheduled_at     INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    worker           TEXT,
    token            TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    flow             TEXT,    -- the job's flow group (its gates as JSON), NULL: no limits
    flow_id          TEXT,    -- flows: the flow it belongs to (conveyor/flows)
    parents          TEXT,    -- flows: JSON {dependency id: failure policy}
    waits            INTEGER NOT NULL DEFAULT 0,  -- flows: unresolved dependencies
    dependents       INTEGER, -- flows: 1 when other jobs wait for this one, else NULL
    dedup            TEXT,    -- its dedup mode's key (conveyor/dedup.py), NULL: none
    expires_at       INTEGER  -- cancelled as expired if not started by then
);

-- The claim order: highest priority, then earliest due, then first in.
CREATE INDEX IF NOT EXISTS jobs_waiting
    ON jobs (queue, priority DESC, scheduled_at, seq) WHERE state = 'waiting';
CREATE INDEX IF NOT EXISTS jobs_delayed ON jobs (scheduled_at) WHERE state = 'delayed';
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (lease_expires_at) WHERE state = 'active';
-- Listing, counting and pruning finished jobs; unfinished ones use the partial indexes above.
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (queue, state, seq)
    WHERE state IN ('completed', 'failed', 'cancelled');
-- A dedup key is unique within its queue (as on Redis Cluster, where a queue is one slot).
DROP INDEX IF EXISTS jobs_key;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_queue_key ON jobs (queue, key) WHERE key IS NOT NULL;

CREATE TABLE IF NOT EXISTS events (
    id     INTEGER PRIMARY KEY,
    job_id TEXT    NOT NULL,
    queue  TEXT    NOT NULL,
    kind   TEXT    NOT NULL,
    data   TEXT    NOT NULL DEFAULT '{}',
    at     INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS queues (
    name   TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0,
    flow   INTEGER NOT NULL DEFAULT 0  -- 1 once a job with limits was stored in the queue
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS workers (
    id           TEXT PRIMARY KEY,
    info         TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tombstones (
    id         TEXT PRIMARY KEY,
    removed_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tombstones_by_age ON tombstones (removed_at);

-- Enqueue writes its jobs' first events itself, one statement per batch.
DROP TRIGGER IF EXISTS jobs_inserted;

CREATE TRIGGER IF NOT EXISTS jobs_state_changed AFTER UPDATE OF state ON jobs
WHEN new.state IS NOT old.state
BEGIN
    INSERT INTO events (job_id, queue, kind, data, at)
    VALUES (
        new.id, new.queue, new.state,
        CASE WHEN new.errors IS NOT old.errors
             THEN json_object('attempt', new.attempt,
                              'error', json_extract(new.errors, '$[#-1].type') || ': ' ||
                                       json_extract(new.errors, '$[#-1].message'))
             ELSE json_object('attempt', new.attempt) END,
        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    );
END;

CREATE TRIGGER IF NOT EXISTS jobs_progressed AFTER UPDATE OF progress ON jobs
WHEN new.progress IS NOT old.progress AND new.progress IS NOT NULL
BEGIN
    INSERT INTO events (job_id, queue, kind, data, at)
    VALUES (new.id, new.queue, 'progress', json_object('progress', json(new.progress)),
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER IF NOT EXISTS jobs_removed AFTER DELETE ON jobs
BEGIN
    INSERT OR REPLACE INTO tombstones (id, removed_at)
    VALUES (old.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

-- schedules     one row per schedule (conveyor/backends/schedules.py). `definition` is JSON
--               only the scheduler reads; the rest is what a firing changes atomically.
--               `version` grows with every change: a firing or save made from an older
--               read is refused.
CREATE TABLE IF NOT EXISTS schedules (
    name            TEXT PRIMARY KEY,
    queue           TEXT    NOT NULL,
    task            TEXT    NOT NULL,
    definition      TEXT    NOT NULL,
    overlap         TEXT    NOT NULL,
    paused          INTEGER NOT NULL DEFAULT 0,
    origin          TEXT    NOT NULL,
    next_run_at     INTEGER,
    version         INTEGER NOT NULL,
    last_tick_at    INTEGER,
    last_job        TEXT,
    last_run_at     INTEGER,
    last_success_at INTEGER,
    pending_tick_at INTEGER,
    enqueued        INTEGER NOT NULL DEFAULT 0,
    skipped_overlap INTEGER NOT NULL DEFAULT 0,
    skipped_misfire INTEGER NOT NULL DEFAULT 0,
    expired         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

-- Flow control (conveyor/flow; the claim's side is sqlite/flow.py).
CREATE INDEX IF NOT EXISTS jobs_flow_waiting
    ON jobs (queue, flow, priority DESC, scheduled_at, seq)
    WHERE state = 'waiting' AND flow IS NOT NULL;

CREATE TABLE IF NOT EXISTS flow_limits (
    queue    TEXT NOT NULL,
    name     TEXT NOT NULL,
    declared TEXT,           -- JSON {"rate": [count, window_ms] | null, "concurrency": n | null}
    override TEXT,           -- the same, set at runtime; wins over `declared`
    PRIMARY KEY (queue, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS flow_groups (
    queue         TEXT    NOT NULL,
    grp           TEXT    NOT NULL,
    rot           INTEGER NOT NULL,             -- lower goes first among equal priorities
    blocked_until INTEGER NOT NULL DEFAULT 0,
    parked_on     TEXT,                         -- JSON [limiter, key] of a full slot
    PRIMARY KEY (queue, grp)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS flow_groups_turn ON flow_groups (queue, rot);
CREATE INDEX IF NOT EXISTS flow_groups_parked ON flow_groups (queue, parked_on)
    WHERE parked_on IS NOT NULL;

CREATE TABLE IF NOT EXISTS flow_starts (
    queue   TEXT    NOT NULL,
    limiter TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS flow_starts_by_key ON flow_starts (queue, limiter, key, at);

CREATE TABLE IF NOT EXISTS flow_pauses (
    queue   TEXT    NOT NULL,
    limiter TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    until   INTEGER NOT NULL,
    PRIMARY KEY (queue, limiter, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS flow_slots (
    queue   TEXT    NOT NULL,
    limiter TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    used    INTEGER NOT NULL,
    PRIMARY KEY (queue, limiter, key)
) WITHOUT ROWID;

-- A job with limits that becomes waiting (promoted, retried, released, rescued) makes
-- sure its group is known to the claim; enqueue does the same for new waiting jobs.
CREATE TRIGGER IF NOT EXISTS flow_waiting AFTER UPDATE OF state ON jobs
WHEN new.state = 'waiting' AND new.flow IS NOT NULL
BEGIN
    INSERT INTO flow_groups (queue, grp, rot)
    VALUES (new.queue, new.flow,
            (SELECT coalesce(max(rot), 0) + 1 FROM flow_groups WHERE queue = new.queue))
    ON CONFLICT DO NOTHING;
END;

-- A job with limits leaving `active` (however: settle, rescue, release) gives its
-- concurrency slots back and un-parks the groups that waited for them.
CREATE TRIGGER IF NOT EXISTS flow_slot_freed AFTER UPDATE OF state ON jobs
WHEN old.state = 'active' AND old.flow IS NOT NULL
BEGIN
    UPDATE flow_slots SET used = used - 1
    WHERE queue = old.queue AND used > 0
      AND (limiter, key) IN (SELECT value ->> 0, value ->> 2 FROM json_each(old.flow));
    UPDATE flow_groups SET parked_on = NULL
    WHERE queue = old.queue AND parked_on IS NOT NULL
      AND parked_on IN (SELECT json_array(value ->> 0, value ->> 2)
                        FROM json_each(old.flow));
END;

-- Flows (conveyor/flows; the store's part is sqlite/dependencies.py). The trigger below
-- runs in the transaction of whatever ends a job (settle, rescue, cancel), so a dependent
-- is released atomically with the step that finishes its last dependency. Ending the
-- dependents of a failed or cancelled job by their edges' policies, and reviving them when
-- it is retried, are the store's named blocks flow_fail_dependents and
-- flow_revive_dependents, run level by level in the same transaction (a trigger that
-- recursed would stop at SQLite's 1,000 levels of trigger depth: a long chain must not).
CREATE INDEX IF NOT EXISTS jobs_flow_id ON jobs (flow_id, seq) WHERE flow_id IS NOT NULL;
-- retention keeps a flow whole while any of its jobs is unfinished: one probe here
CREATE INDEX IF NOT EXISTS jobs_flow_open ON jobs (flow_id)
    WHERE flow_id IS NOT NULL
      AND state IN ('waiting', 'delayed', 'active', 'waiting-children');
CREATE INDEX IF NOT EXISTS jobs_waiting_children
    ON jobs (queue) WHERE state = 'waiting-children';

CREATE TABLE IF NOT EXISTS flow_edges (
    parent TEXT    NOT NULL,
    child  TEXT    NOT NULL,
    policy TEXT    NOT NULL,  -- fail | continue | skip
    done   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (parent, child)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS flow_edges_child ON flow_edges (child, done);

-- A dependency finished: the dependents whose edge it satisfies (it completed, or the edge
-- is "continue") count one dependency less, and those left with none are released, in
-- one row write each; then those edges are marked done. (flow_dependency_done and
-- flow_dependency_settled, earlier versions, also ended the other dependents, recursively.)
DROP TRIGGER IF EXISTS flow_dependency_done;
DROP TRIGGER IF EXISTS flow_dependency_settled;
DROP TRIGGER IF EXISTS flow_dependency_retried;
CREATE TRIGGER IF NOT EXISTS flow_dependency_resolved AFTER UPDATE OF state ON jobs
WHEN new.dependents IS NOT NULL AND new.state IN ('completed', 'failed', 'cancelled')
     AND old.state NOT IN ('completed', 'failed', 'cancelled')
BEGIN
    UPDATE jobs
    SET waits = waits - 1,
        state = CASE WHEN waits = 1 AND state = 'waiting-children' THEN 'waiting'
                     ELSE state END,
        scheduled_at = CASE WHEN waits = 1 AND state = 'waiting-children'
                            THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
                            ELSE scheduled_at END
    WHERE id IN (SELECT child FROM flow_edges
                 WHERE parent = new.id AND done = 0
                   AND (new.state = 'completed' OR policy = 'continue'));
    UPDATE flow_edges SET done = 1
    WHERE parent = new.id AND done = 0 AND (new.state = 'completed' OR policy = 'continue');
END;

-- Dedup modes and expiry (conveyor/dedup.py; sqlite/dedup.py). Neither index names
-- `state`, so the claim's and the settle's state changes never touch them; an expiry
-- whose time passed leaves the index at the next claim (expire_spent).
CREATE INDEX IF NOT EXISTS jobs_dedup ON jobs (queue, dedup, seq) WHERE dedup IS NOT NULL;
DROP INDEX IF EXISTS jobs_expiring;
DROP TRIGGER IF EXISTS dedup_unpark;
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
