-- promote: delayed jobs of one queue become due now.
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

FLOW_ON = redis.call('HGET', META, 'flow') == '1'

local woken = 0

local function promote(now, id, state)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'priority', 'seq', 'attempt')
  redis.call('ZREM', DELAYED, id)
  redis.call('HSET', jk, 'state', 'waiting', 'scheduled_at', int(now),
             'ev', emit_state(now, id, 'waiting', num(f[3])))
  add_waiting(id, f[1], now, f[2])
  woken = woken + 1
  return true
end

local out = each_selected(now_ms(), {delayed = true}, promote)
if woken > 0 then wake(woken) end
events_done()
return out
