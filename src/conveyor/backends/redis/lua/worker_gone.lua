-- worker_gone: forget workers, the one that stopped (ARGV) or, with no ARGV, those not
-- seen for longer than the cutoff.
--
-- KEYS[1]  workers: worker id -> registration JSON
-- KEYS[2]  worker_started: worker id -> first heartbeat (ms)
-- KEYS[3]  worker_seen: worker ids by last heartbeat (ms)
-- ARGV[1]  'id' to forget ARGV[2], or 'older' to forget those unseen for ARGV[2] ms
-- Returns how many were forgotten.

--- @include "clock"

local ids
if ARGV[1] == 'id' then
  ids = {ARGV[2]}
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf',
                   '(' .. int(now_ms() - tonumber(ARGV[2])), 'LIMIT', 0, 1000)
end
local forgotten = 0
for _, id in ipairs(ids) do
  forgotten = forgotten + redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
return forgotten
