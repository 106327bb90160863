-- progress: the running attempt reports progress (any JSON value). A changed value is
-- kept with the job and recorded as a "progress" event.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      job id
-- ARGV[3]      lease token
-- ARGV[4]      the progress value as JSON
-- Returns 1, or 0 when the lease is not held (nothing changed).

--- @include "clock"
--- @include "queue"
--- @include "events"

local id, value = ARGV[2], ARGV[4]
local jk = job_key(id)
local f = redis.call('HMGET', jk, 'state', 'token', 'progress')
if f[1] ~= 'active' or f[2] ~= ARGV[3] then
  return 0
end
if f[3] ~= value then
  local now = now_ms()
  redis.call('HSET', jk, 'progress', value)
  redis.call('HSET', jk, 'ev', emit(now, id, 'progress', '{"progress":' .. value .. '}'))
  events_done()
end
return 1
