-- log: a log line of the running attempt. Recorded as a "log" event for live readers,
-- and kept with the job (the first 1,000 lines over all attempts).
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      job id
-- ARGV[3]      lease token
-- ARGV[4]      the message as a JSON string
-- Returns 1, or 0 when the lease is not held (nothing changed).

--- @include "clock"
--- @include "queue"
--- @include "events"

local id, message = ARGV[2], ARGV[4]
local jk = job_key(id)
local f = redis.call('HMGET', jk, 'state', 'token', 'attempt', 'logs', 'log_count')
if f[1] ~= 'active' or f[2] ~= ARGV[3] then
  return 0
end
local now = now_ms()
local eid = emit(now, id, 'log', '{"message":' .. message .. ',"attempt":' .. num(f[3]) .. '}')
events_done()
local kept = tonumber(f[5] or 0)
if kept < 1000 then
  local entry = '{"at":' .. int(now) .. ',"attempt":' .. num(f[3]) .. ',"message":' ..
                message .. '}'
  redis.call('HSET', jk, 'ev', eid, 'logs', append_json(f[4], entry), 'log_count', kept + 1)
else
  redis.call('HSET', jk, 'ev', eid)
end
return 1
