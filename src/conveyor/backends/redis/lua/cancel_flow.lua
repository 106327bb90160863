-- cancel_flow: cancel what has not run of one flow (conveyor/flows). Jobs waiting for
-- dependencies end cancelled first, newest first (dependents before their dependencies,
-- so none ends failed by a cancelled dependency), then waiting and delayed jobs; running
-- ones get a cancel request their worker sees on its next heartbeat.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      the flow's id
-- Returns the ids cancelled or asked to stop.

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "dependents"

local now = now_ms()
local ids = redis.call('ZREVRANGE', DEPS_BASE .. 'flowjobs:' .. ARGV[2], 0, -1)
local out = {}

local function cancel_now(id, f)
  redis.call('HSET', job_key(id), 'state', 'cancelled', 'finished_at', int(now),
             'ev', emit_state(now, id, 'cancelled', num(f[5])))
  redis.call('ZADD', CANCELLED, now, id)
  if f[6] then dependents_done(now, id, 'cancelled', f[6]) end
  out[#out + 1] = id
end

for pass = 1, 2 do
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', job_key(id), 'state', 'priority', 'scheduled_at', 'seq',
                         'attempt', 'children', 'cancel_requested')
    if pass == 1 and f[1] == 'waiting-children' then
      redis.call('ZREM', BLOCKED, id)
      cancel_now(id, f)
    elseif pass == 2 and f[1] == 'waiting' then
      remove_waiting(id, f[2], f[3], f[4])
      cancel_now(id, f)
    elseif pass == 2 and f[1] == 'delayed' then
      redis.call('ZREM', DELAYED, id)
      cancel_now(id, f)
    elseif pass == 2 and f[1] == 'active' and f[7] ~= '1' then
      redis.call('HSET', job_key(id), 'cancel_requested', 1)
      out[#out + 1] = id
    end
  end
end
events_done()
return out
