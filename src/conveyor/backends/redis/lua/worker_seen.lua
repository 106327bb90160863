-- worker_seen: register a worker or refresh its heartbeat.
--
-- KEYS[1]  workers: worker id -> registration JSON
-- KEYS[2]  worker_started: worker id -> first heartbeat (ms)
-- KEYS[3]  worker_seen: worker ids by last heartbeat (ms)
-- ARGV[1]  worker id
-- ARGV[2]  registration JSON (host, pid, queues, concurrency, in_flight)

--- @include "clock"

local now = int(now_ms())
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSETNX', KEYS[2], ARGV[1], now)
redis.call('ZADD', KEYS[3], now, ARGV[1])
return 1
