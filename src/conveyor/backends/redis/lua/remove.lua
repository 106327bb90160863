-- remove: delete jobs of one queue that are not running, leaving a tombstone for each.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2..9]   the selection (see includes/select.lua); ARGV[10..] ids in 'ids' mode
-- Returns {ids changed, entries to skip on the next call, 1 when the set is exhausted}.

--- @include "clock"
--- @include "queue"
--- @include "select"
--- @include "remove"

local function remove(now, id, state)
  remove_job(now, id)
  return true
end

return each_selected(now_ms(), {waiting = true, delayed = true, completed = true,
                                failed = true, cancelled = true,
                                ['waiting-children'] = true}, remove)
