-- schedule_delete: forget a schedule (the jobs it enqueued stay).
--
-- KEYS[1]  the schedule's hash
-- ARGV[1..] none
-- Returns 1 when it existed, else 0.

return redis.call('DEL', KEYS[1])
