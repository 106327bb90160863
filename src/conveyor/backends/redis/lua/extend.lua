-- extend: a worker's heartbeat for its leases in one queue. Each lease still held gets
-- a new deadline `lease_ms` from now; the answer also says whether a cancel was asked.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      lease length in ms
-- ARGV[3..]    job id and token, two values per lease
-- Returns one status per lease: 1 held, 2 held with a cancel requested, 0 lost.

--- @include "clock"
--- @include "queue"

local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local out = {}
for a = 3, #ARGV, 2 do
  local id = ARGV[a]
  local f = redis.call('HMGET', job_key(id), 'state', 'token', 'cancel_requested')
  if f[1] == 'active' and f[2] == ARGV[a + 1] then
    redis.call('ZADD', ACTIVE, 'XX', deadline, id)
    out[#out + 1] = f[3] == '1' and 2 or 1
  else
    out[#out + 1] = 0
  end
end
return out
