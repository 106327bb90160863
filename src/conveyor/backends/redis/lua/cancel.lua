-- cancel: waiting, delayed and waiting-children jobs of one queue end cancelled at once
-- (the dependents of a cancelled job follow its edges' policies, dependents.lua);
-- active ones get a cancel request that their worker sees on its next heartbeat.
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
--- @include "dependents"

local function cancel(now, id, state)
  local jk = job_key(id)
  if state == 'active' then
    if redis.call('HGET', jk, 'cancel_requested') == '1' then return nil end
    redis.call('HSET', jk, 'cancel_requested', 1)
    return false
  end
  local f = redis.call('HMGET', jk, 'priority', 'scheduled_at', 'seq', 'attempt', 'children')
  if state == 'waiting' then
    remove_waiting(id, f[1], f[2], f[3])
  elseif state == 'waiting-children' then
    redis.call('ZREM', BLOCKED, id)
  else
    redis.call('ZREM', DELAYED, id)
  end
  redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', int(now),
             'ev', emit_state(now, id, 'cancelled', num(f[4])))
  redis.call('ZADD', CANCELLED, now, id)
  if f[5] then dependents_done(now, id, 'cancelled', f[5]) end
  return true
end

local out = each_selected(now_ms(), {waiting = true, delayed = true, active = true,
                                     ['waiting-children'] = true}, cancel)
events_done()
return out
