-- flow_jobs: every job of one flow (conveyor/flows), in the order they were stored.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      the flow's id
-- Returns one HGETALL reply per job still stored.

--- @include "clock"
--- @include "queue"

local out = {}
local members = redis.call('ZRANGE', string.sub(JOB, 1, -5) .. 'flowjobs:' .. ARGV[2], 0, -1)
for _, id in ipairs(members) do
  local h = redis.call('HGETALL', job_key(id))
  if #h > 0 then out[#out + 1] = h end
end
return out
