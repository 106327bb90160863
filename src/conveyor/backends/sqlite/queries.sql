-- conveyor's SQLite statements, one named block each ("-- name: <verb>" then a one-line
-- purpose). Every block runs inside a BEGIN IMMEDIATE transaction opened by the store, with
-- :now read from SQLite's clock at the start of that transaction.
-- The store appends `RETURNING <job columns>` where a block ends with "RETURNING *".

-- name: now
-- SQLite's clock in ms since the epoch; the only clock conveyor's SQLite backend uses.
SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);

-- name: last_seq
-- The newest job's seq: jobs stored after it in this transaction are this call's.
SELECT coalesce(max(seq), 0) FROM jobs;

-- name: enqueue
-- Store one job unless its key (or id) exists already (run with executemany; positional:
-- id, queue, task, args, kwargs, state, priority, key, max_attempts, max_stalls, timeout,
-- backoff, meta, created_at, scheduled_at).
INSERT INTO jobs (id, queue, task, args, kwargs, state, priority, key, max_attempts,
                  max_stalls, timeout, backoff, meta, created_at, scheduled_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: enqueue_flow
-- The same for a batch with flow-controlled jobs: one more column, the job's flow group.
INSERT INTO jobs (id, queue, task, args, kwargs, state, priority, key, max_attempts,
                  max_stalls, timeout, backoff, meta, created_at, scheduled_at, flow)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: enqueue_once
-- One job of a batch with dedup modes or expiry (sqlite/dedup.py): the enqueue columns,
-- then flow, dedup, expires_at.
INSERT INTO jobs (id, queue, task, args, kwargs, state, priority, key, max_attempts,
                  max_stalls, timeout, backoff, meta, created_at, scheduled_at, flow, dedup,
                  expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: dedup_holder
-- The newest job that took a dedup key in a queue, with what a dedup mode decides by.
SELECT seq, state, attempt + stalls, created_at, scheduled_at FROM jobs
WHERE queue = :queue AND dedup = :dedup ORDER BY seq DESC LIMIT 1;

-- name: dedup_fold
-- A fold that changes the holder: new arguments (replace) and/or a later due time
-- (debounce); a waiting job pushed into the future is delayed again.
UPDATE jobs
SET args = coalesce(:args, args), kwargs = coalesce(:kwargs, kwargs),
    scheduled_at = coalesce(:due, scheduled_at),
    state = CASE WHEN :due > :now THEN 'delayed' ELSE state END
WHERE seq = :seq
RETURNING *;

-- name: before_claim
-- Whether the claim has expiries due or keep_last copies parked: one statement, two index
-- seeks (jobs_expiry, jobs_delayed), so the claim of a store without them pays only this.
SELECT EXISTS (SELECT 1 FROM jobs WHERE expires_at <= :now),
       EXISTS (SELECT 1 FROM jobs WHERE state = 'delayed' AND scheduled_at = 253402300799000);

-- name: expire_due
-- Jobs never started by their expiry end cancelled with reason "expired", in the claim's
-- transaction before anything is claimed (served by the jobs_expiry index). The expiry
-- is spent: a retry of the job runs it.
UPDATE jobs
SET state = 'cancelled', finished_at = :now, expires_at = NULL,
    errors = json_insert(errors, '$[#]', json_object(
        'type', 'JobExpired', 'message', 'expired: not started by its expiry time',
        'reason', 'expired', 'expires_at', expires_at, 'at', :now))
WHERE expires_at <= :now AND state IN ('waiting', 'delayed') AND attempt + stalls = 0;

-- name: expire_spent
-- The other expiries whose time passed (their jobs started in time) leave the index.
UPDATE jobs SET expires_at = NULL WHERE expires_at <= :now;

-- name: dedup_unpark
-- keep_last copies parked (delayed until conveyor/dedup.py's PARKED_AT) while no job with
-- their key runs any more become waiting, in the claim's transaction before it claims.
UPDATE jobs SET state = 'waiting', scheduled_at = :now
WHERE state = 'delayed' AND scheduled_at = 253402300799000
  AND NOT EXISTS (SELECT 1 FROM jobs AS running
                  WHERE running.queue = jobs.queue AND running.dedup = jobs.dedup
                    AND running.state = 'active');

-- name: enqueued_events
-- One event per job this call stored, in one statement (cheaper than a row trigger).
INSERT INTO events (job_id, queue, kind, data, at)
SELECT id, queue, state, '{"attempt":0}', created_at FROM jobs WHERE seq > :before
ORDER BY seq;

-- name: ids_after
SELECT id FROM jobs WHERE seq > :before;

-- name: by_key
-- The job that holds a dedup key in a queue.
SELECT * FROM jobs WHERE queue = :queue AND key = :key;

-- name: by_seq
SELECT * FROM jobs WHERE seq = :seq;

-- name: by_id
SELECT * FROM jobs WHERE id = :id;

-- name: paused_queues
SELECT name FROM queues WHERE paused = 1;

-- name: promote_due
-- Delayed jobs whose time has come become waiting.
UPDATE jobs SET state = 'waiting'
WHERE state = 'delayed' AND scheduled_at <= :now;

-- name: claim_candidates
-- The next jobs of one queue in claim order (served by the jobs_waiting index).
SELECT seq, priority, scheduled_at FROM jobs
WHERE state = 'waiting' AND queue = :queue
ORDER BY priority DESC, scheduled_at, seq
LIMIT :limit;

-- name: claim
-- Lease the chosen jobs to a worker, each with a fresh random fencing token; a job others
-- wait for (flows) gets '^' in it, one with limits ends it with '+' (the settle wakes
-- idle workers for those).
UPDATE jobs
SET state = 'active', attempt = attempt + 1, worker = :worker, started_at = :now,
    token = lower(hex(randomblob(8))) || CASE WHEN dependents IS NULL THEN '' ELSE '^' END
            || CASE WHEN flow IS NULL THEN '' ELSE '+' END,
    lease_expires_at = :now + :lease_ms
WHERE seq IN (SELECT value FROM json_each(:seqs)) AND state = 'waiting'
RETURNING *;

-- name: next_due
-- When the earliest delayed job of these queues is due.
SELECT min(scheduled_at) FROM jobs
WHERE state = 'delayed' AND queue IN (SELECT value FROM json_each(:queues));

-- name: complete
-- The running attempt succeeded.
UPDATE jobs
SET state = 'completed', result = :result, finished_at = :now,
    token = NULL, lease_expires_at = NULL
WHERE id = :id AND token = :token AND state = 'active';

-- name: complete_many
-- The same for a batch: :batch is a JSON array of [id, token, result_json].
UPDATE jobs
SET state = 'completed', result = s.value ->> 2, finished_at = :now,
    token = NULL, lease_expires_at = NULL
FROM json_each(:batch) AS s
WHERE jobs.id = s.value ->> 0 AND jobs.token = s.value ->> 1 AND jobs.state = 'active'
RETURNING jobs.id;

-- name: fail
-- The running attempt failed: retry after :retry_in_ms, or (NULL) end in the failed set.
UPDATE jobs
SET state = CASE WHEN :retry_in_ms IS NULL THEN 'failed'
                 WHEN :retry_in_ms > 0 THEN 'delayed' ELSE 'waiting' END,
    scheduled_at = CASE WHEN :retry_in_ms IS NULL THEN scheduled_at
                        ELSE :now + :retry_in_ms END,
    finished_at = CASE WHEN :retry_in_ms IS NULL THEN :now END,
    errors = json_insert(errors, '$[#]', json_set(:error, '$.at', :now)),
    token = NULL, lease_expires_at = NULL
WHERE id = :id AND token = :token AND state = 'active';

-- name: cancelled
-- The running attempt stopped because of a cancel request (or the task's Cancel).
UPDATE jobs
SET state = 'cancelled', finished_at = :now, token = NULL, lease_expires_at = NULL,
    errors = CASE WHEN :error IS NULL THEN errors
                  ELSE json_insert(errors, '$[#]', json_set(:error, '$.at', :now)) END
WHERE id = :id AND token = :token AND state = 'active';

-- name: release
-- Hand an unfinished job back (worker shutdown) without charging the attempt.
UPDATE jobs
SET state = 'waiting', attempt = attempt - 1, worker = NULL, started_at = NULL,
    token = NULL, lease_expires_at = NULL
WHERE id = :id AND token = :token AND state = 'active';

-- name: extend_lease
-- Keep a held lease alive; tells the worker whether a cancel was requested.
UPDATE jobs SET lease_expires_at = :now + :lease_ms
WHERE id = :id AND token = :token AND state = 'active'
RETURNING cancel_requested;

-- name: worker_seen
-- Register a worker or refresh its heartbeat.
INSERT INTO workers (id, info, started_at, last_seen_at) VALUES (:id, :info, :now, :now)
ON CONFLICT (id) DO UPDATE SET info = excluded.info, last_seen_at = excluded.last_seen_at;

-- name: worker_gone
DELETE FROM workers WHERE id = :id;

-- name: progress
-- The running attempt reports progress (the jobs_progressed trigger records the event).
UPDATE jobs SET progress = :progress
WHERE id = :id AND token = :token AND state = 'active';

-- name: log_event
-- A log line of the running attempt, for live readers.
INSERT INTO events (job_id, queue, kind, data, at)
SELECT id, queue, 'log', json_object('message', :message, 'attempt', attempt), :now
FROM jobs WHERE id = :id AND token = :token AND state = 'active';

-- name: log_keep
-- The same line kept with the job (the first 1,000 lines of all attempts).
UPDATE jobs
SET logs = json_insert(logs, '$[#]',
                       json_object('at', :now, 'attempt', attempt, 'message', :message))
WHERE id = :id AND token = :token AND state = 'active' AND json_array_length(logs) < 1000;

-- name: rescue
-- Take back jobs whose lease expired: cancelled if a cancel was pending, waiting again
-- (attempt uncharged) while stalls remain, else failed.
UPDATE jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN stalls < max_stalls THEN 'waiting' ELSE 'failed' END,
    attempt = CASE WHEN NOT cancel_requested AND stalls < max_stalls
                   THEN attempt - 1 ELSE attempt END,
    finished_at = CASE WHEN cancel_requested OR stalls >= max_stalls THEN :now END,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempt, 'type', 'Stalled', 'at', :now, 'traceback', NULL,
        'message', 'lease expired: worker ' || coalesce(worker, '?') ||
                   ' stopped renewing it' ||
                   CASE WHEN stalls >= max_stalls AND NOT cancel_requested
                        THEN ' (max_stalls=' || max_stalls || ' reached)' ELSE '' END)),
    stalls = stalls + 1, token = NULL, lease_expires_at = NULL
WHERE state = 'active' AND lease_expires_at < :now
RETURNING id;

-- name: try_lock
-- Take a named lock, or renew it if we hold it; expired locks pass to the caller.
INSERT INTO locks (name, owner, expires_at) VALUES (:name, :owner, :now + :ttl_ms)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE locks.owner = excluded.owner OR locks.expires_at < :now
RETURNING owner;

-- name: prune_by_age
-- Remove finished jobs of one queue and state older than the cutoff (one batch). A flow
-- is one unit: none of its jobs goes while any of them has not finished.
DELETE FROM jobs WHERE seq IN (
    SELECT seq FROM jobs
    WHERE queue = :queue AND state = :state AND finished_at < :cutoff
      AND state IN ('completed', 'failed', 'cancelled')
      AND (flow_id IS NULL OR NOT EXISTS (
          SELECT 1 FROM jobs AS u WHERE u.flow_id = jobs.flow_id
            AND u.state IN ('waiting', 'delayed', 'active', 'waiting-children')))
    ORDER BY seq LIMIT :batch);

-- name: prune_over_count
-- Remove the oldest finished jobs of one queue and state beyond the newest :keep (a
-- flow's jobs stay while any job of the flow has not finished).
DELETE FROM jobs WHERE seq IN (
    SELECT seq FROM jobs WHERE queue = :queue AND state = :state
      AND state IN ('completed', 'failed', 'cancelled')
      AND (flow_id IS NULL OR NOT EXISTS (
          SELECT 1 FROM jobs AS u WHERE u.flow_id = jobs.flow_id
            AND u.state IN ('waiting', 'delayed', 'active', 'waiting-children')))
    ORDER BY seq DESC LIMIT :batch OFFSET :keep);

-- name: prune_events
-- Drop the oldest events past the cutoff (ids grow with time, so the head is the oldest),
-- always keeping the newest, which is what keeps new ids above every id ever handed out.
DELETE FROM events
WHERE id IN (SELECT id FROM events ORDER BY id LIMIT :batch) AND at < :cutoff
  AND id < (SELECT max(id) FROM events);

-- name: prune_tombstones
-- Drop tombstones past their age (one batch).
DELETE FROM tombstones WHERE id IN (
    SELECT id FROM tombstones WHERE removed_at < :cutoff ORDER BY removed_at LIMIT :batch);

-- name: prune_tombstones_over_count
-- Drop the oldest tombstones beyond the newest :keep (one batch).
DELETE FROM tombstones WHERE id IN (
    SELECT id FROM tombstones ORDER BY removed_at DESC LIMIT :batch OFFSET :keep);

-- name: prune_workers
-- Forget workers that have not been seen for a long time.
DELETE FROM workers WHERE last_seen_at < :cutoff;

-- name: tombstone
SELECT removed_at FROM tombstones WHERE id = :id;

-- name: state_counts
-- Jobs per queue and state, each state counted on its own partial index.
SELECT queue, 'waiting', count(*) FROM jobs WHERE state = 'waiting' GROUP BY queue
UNION ALL
SELECT queue, 'delayed', count(*) FROM jobs WHERE state = 'delayed' GROUP BY queue
UNION ALL
SELECT queue, 'active', count(*) FROM jobs WHERE state = 'active' GROUP BY queue
UNION ALL
SELECT queue, 'waiting-children', count(*) FROM jobs WHERE state = 'waiting-children'
GROUP BY queue
UNION ALL
SELECT queue, state, count(*) FROM jobs
WHERE state IN ('completed', 'failed', 'cancelled') GROUP BY queue, state;

-- name: oldest_waiting
SELECT queue, min(scheduled_at) FROM jobs WHERE state = 'waiting' GROUP BY queue;

-- name: all_queues
SELECT name, paused FROM queues;

-- name: workers
SELECT info, started_at, last_seen_at FROM workers ORDER BY started_at;

-- name: event_head
-- The newest event's id (retention never removes the newest event, so ids never repeat).
SELECT coalesce(max(id), 0) FROM events;

-- name: events
SELECT id, job_id, queue, kind, data, at FROM events
WHERE id > :after ORDER BY id LIMIT :limit;

-- name: job_events
SELECT id, job_id, queue, kind, data, at FROM events
WHERE job_id = :job_id AND id > :after ORDER BY id LIMIT :limit;

-- name: cancel_pending
-- Waiting, delayed and waiting-children jobs end cancelled at once.
UPDATE jobs SET state = 'cancelled', finished_at = :now
WHERE state IN ('waiting', 'delayed', 'waiting-children') AND {where}
RETURNING id;

-- name: cancel_active
-- Running jobs get a cancel request that their worker sees on its next heartbeat.
UPDATE jobs SET cancel_requested = 1
WHERE state = 'active' AND cancel_requested = 0 AND {where}
RETURNING id;

-- name: retry
-- Failed and cancelled jobs go back to waiting with a fresh set of attempts (a flow's
-- job whose dependencies have not all finished waits for them again).
UPDATE jobs
SET state = CASE WHEN waits > 0 THEN 'waiting-children' ELSE 'waiting' END, attempt = 0, stalls = 0, scheduled_at = :now, started_at = NULL,
    finished_at = NULL, result = NULL, progress = NULL, cancel_requested = 0, worker = NULL
WHERE state IN ('failed', 'cancelled') AND {where}
RETURNING id;

-- name: promote
-- Delayed jobs become due now.
UPDATE jobs SET state = 'waiting', scheduled_at = :now
WHERE state = 'delayed' AND {where}
RETURNING id;

-- name: remove
-- Delete jobs that are not running (the jobs_removed trigger leaves a tombstone).
DELETE FROM jobs WHERE state != 'active' AND {where}
RETURNING id;

-- name: set_paused
INSERT INTO queues (name, paused) VALUES (:queue, :paused)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused;

-- Schedules (conveyor/backends/schedules.py; the store's part is sqlite/schedules.py).

-- name: schedules
-- Every schedule with the state and finish time of its last run's job.
SELECT s.name, s.queue, s.task, s.definition, s.overlap, s.paused, s.origin, s.next_run_at,
       s.version, s.last_tick_at, s.last_job, j.state, s.last_run_at, s.last_success_at,
       s.pending_tick_at, s.enqueued, s.skipped_overlap, s.skipped_misfire, s.expired,
       s.created_at, s.updated_at, j.finished_at
FROM schedules AS s LEFT JOIN jobs AS j ON j.id = s.last_job
ORDER BY s.name;

-- name: schedule_by_name
-- One schedule, as `schedules` reads each.
SELECT s.name, s.queue, s.task, s.definition, s.overlap, s.paused, s.origin, s.next_run_at,
       s.version, s.last_tick_at, s.last_job, j.state, s.last_run_at, s.last_success_at,
       s.pending_tick_at, s.enqueued, s.skipped_overlap, s.skipped_misfire, s.expired,
       s.created_at, s.updated_at, j.finished_at
FROM schedules AS s LEFT JOIN jobs AS j ON j.id = s.last_job
WHERE s.name = :name;

-- name: schedule_version
-- A schedule's version and last run, read inside the transaction that changes it.
SELECT s.version, s.last_job, j.state, j.finished_at, s.pending_tick_at, s.last_tick_at,
       s.last_run_at, s.last_success_at, s.next_run_at, s.overlap
FROM schedules AS s LEFT JOIN jobs AS j ON j.id = s.last_job
WHERE s.name = :name;

-- name: schedule_create
INSERT INTO schedules (name, queue, task, definition, overlap, paused, origin, next_run_at,
                       version, created_at, updated_at)
VALUES (:name, :queue, :task, :definition, :overlap, :paused, :origin, :next_run_at, 1,
        :now, :now)
ON CONFLICT DO NOTHING;

-- name: schedule_replace
-- A new definition and next run, from the version it was made from.
UPDATE schedules
SET queue = :queue, task = :task, definition = :definition, overlap = :overlap,
    paused = :paused, origin = :origin, next_run_at = :next_run_at, version = version + 1,
    pending_tick_at = CASE WHEN :paused THEN NULL ELSE pending_tick_at END, updated_at = :now
WHERE name = :name AND version = :version;

-- name: schedule_delete
DELETE FROM schedules WHERE name = :name;

-- name: schedule_expire
-- Cancel a schedule's run that did not start in time, saying why in its errors.
UPDATE jobs
SET state = 'cancelled', finished_at = :now,
    errors = json_insert(errors, '$[#]',
                         json_object('type', 'ScheduleExpired', 'message', :reason, 'at', :now))
WHERE id = :id AND state IN ('waiting', 'delayed');

-- name: schedule_fired
-- What a firing changed: last run, next run, buffered tick and counters.
UPDATE schedules
SET next_run_at = :next_run_at, last_tick_at = :last_tick_at, last_job = :last_job,
    last_run_at = :last_run_at, last_success_at = :last_success_at,
    pending_tick_at = :pending_tick_at, enqueued = enqueued + :enqueued,
    skipped_overlap = skipped_overlap + :skipped_overlap,
    skipped_misfire = skipped_misfire + :skipped_misfire, expired = expired + :expired,
    version = version + 1, updated_at = :now
WHERE name = :name
RETURNING version;

-- Flow control (conveyor/flow; sqlite/flow.py runs these inside the claim's transaction).
-- A flow-controlled job's lease token ends in '+', so a settle knows a slot may free up.

-- name: special_queues
-- Queues a claim treats apart: paused ones, and those holding flow-controlled jobs.
SELECT name, paused, flow FROM queues WHERE paused = 1 OR flow = 1;

-- name: flow_queue_on
INSERT INTO queues (name, paused, flow) VALUES (:queue, 0, 1)
ON CONFLICT (name) DO UPDATE SET flow = 1 WHERE flow = 0;

-- name: flow_group_add
-- A group with waiting jobs takes its turn after every group known now.
INSERT INTO flow_groups (queue, grp, rot)
VALUES (:queue, :grp,
        (SELECT coalesce(max(rot), 0) + 1 FROM flow_groups WHERE queue = :queue))
ON CONFLICT DO NOTHING;

-- name: flow_limits
-- The limits in force in a queue: the runtime override, else the declared limit.
SELECT name, coalesce(override, declared) FROM flow_limits WHERE queue = :queue;

-- name: flow_ready_groups
-- Groups that may start a job now, each with its best waiting job's priority (NULL: empty).
SELECT grp, rot,
       (SELECT priority FROM jobs
        WHERE state = 'waiting' AND queue = :queue AND flow = g.grp
        ORDER BY priority DESC, scheduled_at, seq LIMIT 1)
FROM flow_groups AS g
WHERE queue = :queue AND blocked_until <= :now AND parked_on IS NULL;

-- name: flow_group_heads
-- A group's next jobs in claim order (served by jobs_flow_waiting).
SELECT seq, priority, scheduled_at FROM jobs
WHERE state = 'waiting' AND queue = :queue AND flow = :grp
ORDER BY priority DESC, scheduled_at, seq
LIMIT :limit;

-- name: flow_free_candidates
-- The next jobs without limits of a queue that also holds flow-controlled jobs.
SELECT seq, priority, scheduled_at FROM jobs
WHERE state = 'waiting' AND queue = :queue AND flow IS NULL
ORDER BY priority DESC, scheduled_at, seq
LIMIT :limit;

-- name: flow_forget_starts
-- Starts that left the window can never count again.
DELETE FROM flow_starts
WHERE queue = :queue AND limiter = :limiter AND key = :key AND at <= :since;

-- name: flow_count_starts
SELECT count(*) FROM flow_starts
WHERE queue = :queue AND limiter = :limiter AND key = :key AND at > :since;

-- name: flow_nth_start
-- The start whose leaving the window lets the next job start.
SELECT at FROM flow_starts
WHERE queue = :queue AND limiter = :limiter AND key = :key AND at > :since
ORDER BY at LIMIT 1 OFFSET :offset;

-- name: flow_record_start
INSERT INTO flow_starts (queue, limiter, key, at) VALUES (?, ?, ?, ?);

-- name: flow_pause_of
SELECT until FROM flow_pauses
WHERE queue = :queue AND limiter = :limiter AND key = :key AND until > :now;

-- name: flow_slots_of
SELECT used FROM flow_slots WHERE queue = :queue AND limiter = :limiter AND key = :key;

-- name: flow_take_slot
INSERT INTO flow_slots (queue, limiter, key, used) VALUES (?, ?, ?, 1)
ON CONFLICT DO UPDATE SET used = used + 1;

-- name: flow_group_turn
-- A group that started a job goes to the back of the line.
UPDATE flow_groups SET rot = ?, blocked_until = 0 WHERE queue = ? AND grp = ?;

-- name: flow_group_blocked
UPDATE flow_groups SET blocked_until = ? WHERE queue = ? AND grp = ?;

-- name: flow_group_parked
UPDATE flow_groups SET parked_on = ? WHERE queue = ? AND grp = ?;

-- name: flow_group_drop
-- Forget a group whose last waiting job just started (or was cancelled).
DELETE FROM flow_groups
WHERE queue = ? AND grp = ?
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'waiting' AND queue = ? AND flow = ?);

-- name: flow_next_unblock
-- When the earliest blocked group of these queues may start again.
SELECT min(blocked_until) FROM flow_groups
WHERE queue IN (SELECT value FROM json_each(:queues)) AND blocked_until > :now
  AND parked_on IS NULL;

-- name: rate_limited
-- The task said "rate limited": hand the job back without charging the attempt. A job
-- with limits waits in its group (paused by flow_pause); one without waits delayed.
UPDATE jobs
SET state = CASE WHEN flow IS NULL THEN 'delayed' ELSE 'waiting' END,
    scheduled_at = CASE WHEN flow IS NULL THEN :now + :retry_in_ms ELSE scheduled_at END,
    attempt = attempt - 1, worker = NULL, started_at = NULL, token = NULL,
    lease_expires_at = NULL
WHERE id = :id AND token = :token AND state = 'active'
RETURNING queue, flow;

-- name: flow_pause
-- Pause a (limiter, key) for every worker until :until (a later pause wins).
INSERT INTO flow_pauses (queue, limiter, key, until) VALUES (?, ?, ?, ?)
ON CONFLICT DO UPDATE SET until = max(until, excluded.until);

-- name: flow_declare
-- A limit declared in code (a worker's start writes its app's declarations).
INSERT INTO flow_limits (queue, name, declared) VALUES (:queue, :name, :declared)
ON CONFLICT DO UPDATE SET declared = excluded.declared;

-- name: flow_override
-- A limit changed at runtime (NULL: back to the declared one).
INSERT INTO flow_limits (queue, name, override) VALUES (:queue, :name, :override)
ON CONFLICT DO UPDATE SET override = excluded.override;

-- name: flow_all_limits
SELECT queue, name, declared, override FROM flow_limits ORDER BY queue, name;

-- name: flow_all_slots
SELECT queue, limiter, key, used FROM flow_slots WHERE used > 0;

-- name: flow_all_pauses
SELECT queue, limiter, key, until FROM flow_pauses WHERE until > :now;

-- name: flow_all_starts
-- Starts per (limiter, key) since :since (the caller keeps those within each window).
SELECT queue, limiter, key, count(*), max(at) FROM flow_starts
WHERE at > :since GROUP BY queue, limiter, key;

-- name: flow_blocked_groups
-- Groups the claim found blocked, with how many jobs wait in each.
SELECT g.queue, g.grp, g.blocked_until, g.parked_on,
       (SELECT count(*) FROM jobs
        WHERE state = 'waiting' AND queue = g.queue AND flow = g.grp)
FROM flow_groups AS g
WHERE g.parked_on IS NOT NULL OR g.blocked_until > :now;

-- name: flow_job_group
SELECT flow FROM jobs WHERE id = :id;

-- name: flow_prune_starts
DELETE FROM flow_starts WHERE at < :cutoff;

-- name: flow_prune_pauses
DELETE FROM flow_pauses WHERE until < :now;

-- Flows (conveyor/flows; sqlite/dependencies.py).

-- name: flow_enqueue
-- Store one job of a flow (positional: id, queue, task, args, kwargs, state, priority,
-- max_attempts, max_stalls, timeout, backoff, meta, created_at, scheduled_at, flow group,
-- flow id, parents JSON, waits, dependents flag).
INSERT INTO jobs (id, queue, task, args, kwargs, state, priority, max_attempts, max_stalls,
                  timeout, backoff, meta, created_at, scheduled_at, flow, flow_id, parents,
                  waits, dependents)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: flow_edge
-- One dependency of a flow's job (positional: parent, child, policy).
INSERT INTO flow_edges (parent, child, policy) VALUES (?, ?, ?);

-- name: flow_jobs
-- Every job of a flow, in the order they were stored.
SELECT * FROM jobs WHERE flow_id = :flow_id ORDER BY seq;

-- name: flow_blocked
-- A flow's jobs waiting for dependencies, dependents first (they were stored after).
SELECT id FROM jobs WHERE flow_id = :flow_id AND state = 'waiting-children'
ORDER BY seq DESC;

-- name: flow_cancel_one
-- One of them ends cancelled (its dependents already have, so none ends failed).
UPDATE jobs SET state = 'cancelled', finished_at = :now
WHERE id = :id AND state = 'waiting-children';

-- name: spawn_parent
-- The running job that spawns children, if its lease holds.
SELECT flow_id FROM jobs WHERE id = :id AND token = :token AND state = 'active';

-- name: spawn_waits
-- It waits for its new children too ("continue": it runs again whatever they end as).
UPDATE jobs
SET flow_id = :flow_id, waits = waits + :added,
    parents = json_patch(coalesce(parents, '{}'), :edges)
WHERE id = :id;

-- name: wait_children
-- The attempt that spawned children ends: the job waits for them (or is due at once if
-- they have all finished), the attempt not charged.
UPDATE jobs
SET state = CASE WHEN waits > 0 THEN 'waiting-children' ELSE 'waiting' END,
    attempt = attempt - 1, worker = NULL, started_at = NULL, scheduled_at = :now,
    token = NULL, lease_expires_at = NULL
WHERE id = :id AND token = :token AND state = 'active';

-- name: flow_fail_dependents
-- The dependents that the jobs in :parents (just failed or cancelled) hold by a "fail" or
-- "skip" edge end failed or cancelled, their error naming the dependency. One level: the
-- store repeats with the ids this returns (each row's update fires the resolving trigger).
UPDATE jobs
SET state = CASE b.policy WHEN 'skip' THEN 'cancelled' ELSE 'failed' END,
    finished_at = :now,
    errors = json_insert(jobs.errors, '$[#]', json_object(
        'attempt', jobs.attempt, 'type', 'DependencyFailed', 'dependency', b.parent,
        'message', 'dependency ' || b.parent || ' (' || b.task || ') ended ' || b.pstate,
        'traceback', NULL, 'at', :now))
FROM (SELECT e.child AS child, e.parent AS parent, e.policy AS policy, p.task AS task,
             p.state AS pstate
      FROM flow_edges AS e JOIN jobs AS p ON p.id = e.parent
      WHERE e.parent IN (SELECT value FROM json_each(:parents)) AND e.done = 0
        AND e.policy != 'continue' AND p.state IN ('failed', 'cancelled')
      GROUP BY e.child) AS b
WHERE jobs.id = b.child AND jobs.state = 'waiting-children'
RETURNING jobs.id;

-- name: flow_revive_dependents
-- The jobs in :parents were retried: the dependents they ended wait for them again,
-- unless another dependency still holds them failed. One level, repeated by the store.
UPDATE jobs SET state = 'waiting-children', finished_at = NULL
WHERE state IN ('failed', 'cancelled')
  AND id IN (SELECT child FROM flow_edges
             WHERE parent IN (SELECT value FROM json_each(:parents)) AND done = 0)
  AND json_extract(errors, '$[#-1].type') = 'DependencyFailed'
  AND NOT EXISTS (SELECT 1 FROM flow_edges AS e JOIN jobs AS p ON p.id = e.parent
                  WHERE e.child = jobs.id AND e.done = 0 AND e.policy != 'continue'
                    AND p.state IN ('failed', 'cancelled'))
RETURNING id;

-- name: flow_remove_parents
-- Jobs others wait for that are removed before they finished count as cancelled for
-- their dependents first (their edges' policies apply; the remove follows).
UPDATE jobs SET state = 'cancelled', finished_at = :now
WHERE state IN ('waiting', 'delayed', 'waiting-children') AND dependents IS NOT NULL
  AND {where}
RETURNING id;
