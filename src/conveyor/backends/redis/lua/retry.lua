-- retry: failed and cancelled jobs of one queue go back to waiting with a fresh set of
-- attempts (their errors and logs are kept as history). Flows: a job whose dependencies
-- have not all finished waits for them again (waiting-children), and the dependents a
-- retried job had ended wait for it again (dependents.lua).
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2..9]   the selection (see includes/select.lua); ARGV[10..] ids in 'ids' mode
-- Returns {ids changed, entries to skip on the next call, 1 when the set is exhausted}.

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "select"
--- @include "flow"
--- @include "dependents"

FLOW_ON = redis.call('HGET', META, 'flow') == '1'

local woken = 0

local function retry(now, id, state)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'priority', 'seq', 'waits', 'children')
  local next_state = 'waiting'
  if num(f[3]) > 0 then next_state = 'waiting-children' end
  redis.call('ZREM', FINISHED[state], id)
  redis.call('HSET', jk, 'state', next_state, 'attempt', 0, 'stalls', 0,
             'scheduled_at', int(now), 'cancel_requested', 0,
             'ev', emit_state(now, id, next_state, 0))
  redis.call('HDEL', jk, 'started_at', 'finished_at', 'result', 'progress', 'worker')
  if next_state == 'waiting' then
    add_waiting(id, f[1], now, f[2])
    woken = woken + 1
  else
    redis.call('ZADD', BLOCKED, now, id)
  end
  if f[4] then dependents_revived(now, id, f[4]) end
  return true
end

local out = each_selected(now_ms(), {failed = true, cancelled = true}, retry)
if woken > 0 then wake(woken) end
events_done()
return out
