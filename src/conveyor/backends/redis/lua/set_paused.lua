-- set_paused: pause or resume one queue. A paused queue keeps accepting jobs but none is
-- claimed; resuming wakes idle workers when jobs are waiting.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      1 to pause, 0 to resume

--- @include "clock"
--- @include "queue"

redis.call('HSET', META, 'paused', ARGV[2])
if ARGV[2] == '0' and redis.call('ZCARD', WAITING) > 0 then
  wake(WAKE_CAP)
end
return 1
