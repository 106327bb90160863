-- try_lock: take a named lock (leadership for maintenance and cron), or renew it if the
-- caller holds it already. The lock expires on Redis' clock when not renewed in time.
--
-- KEYS[1]  the lock
-- ARGV[1]  the caller (owner)
-- ARGV[2]  time to live in ms
-- Returns 1 when the caller holds the lock now, else 0.

local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
