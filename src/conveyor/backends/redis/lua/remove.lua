-- remove: delete jobs of one queue that are not running, leaving a tombstone for each
-- (a flow's job others wait for counts as cancelled for them first, dependents.lua).
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2..9]   the selection (see includes/select.lua); ARGV[10..] ids in 'ids' mode
-- Returns {ids changed, entries to skip on the next call, 1 when the set is exhausted}.

--- @include "clock"
--- @include "queue"
--- @include "select"
--- @include "events"
--- @include "dependents"
--- @include "remove"

local function remove(now, id, state)
  if state == 'waiting' or state == 'delayed' or state == 'waiting-children' then
    -- flows: the dependents of a job removed before it finished see it cancelled
    local children = redis.call('HGET', job_key(id), 'children')
    if children then dependents_done(now, id, 'cancelled', children) end
  end
  remove_job(now, id)
  return true
end

local out = each_selected(now_ms(), {waiting = true, delayed = true, completed = true,
                                     failed = true, cancelled = true,
                                     ['waiting-children'] = true}, remove)
events_done()
return out
