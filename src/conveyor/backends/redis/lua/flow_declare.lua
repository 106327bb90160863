-- flow_declare: store limits of one queue: those an app declares in code (a starting
-- worker writes them) or a runtime override (includes/flow.lua). A changed limit may
-- free blocked or parked groups: every group of the queue is looked at again by the
-- next claim, which applies the new limits.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      'declared': ARGV[3..] are limiter, limit JSON pairs to store as declared;
--              'override': ARGV[3] the limiter, ARGV[4] its override JSON ('' = drop it)
-- Returns 1.

--- @include "clock"
--- @include "queue"
--- @include "flow"

if ARGV[2] == 'declared' then
  for i = 3, #ARGV, 2 do
    redis.call('HSET', FLOW .. 'limits', ARGV[i], ARGV[i + 1])
  end
elseif ARGV[4] == '' then
  redis.call('HDEL', FLOW .. 'overrides', ARGV[3])
else
  redis.call('HSET', FLOW .. 'overrides', ARGV[3], ARGV[4])
end
local blocked = redis.call('ZRANGE', F_BLOCKED, 0, -1)
redis.call('DEL', F_BLOCKED)
for _, grp in ipairs(blocked) do flow_ready(grp) end
local parked = redis.call('ZRANGE', F_PARKED, 0, -1)
redis.call('DEL', F_PARKED)
for _, m in ipairs(parked) do
  local grp = string.sub(m, string.find(m, '\n', string.find(m, '\n', 1, true) + 1, true) + 1)
  flow_ready(grp)
end
if #blocked + #parked > 0 then wake(WAKE_CAP) end
return 1
