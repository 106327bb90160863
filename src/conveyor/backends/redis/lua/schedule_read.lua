-- schedule_read: the schedules of one queue, each with its last run's job state.
--
-- KEYS[1]     the queue's job key prefix (see keyspace.py)
-- KEYS[2..]   schedule hashes of that queue
-- ARGV[1..]   none
-- Returns one entry per schedule: {} when it does not exist, else
-- {HGETALL of the schedule, last job's state or false, its finished_at or false}.

local out = {}
for i = 2, #KEYS do
  local h = redis.call('HGETALL', KEYS[i])
  if #h == 0 then
    out[#out + 1] = {}
  else
    local last = redis.call('HGET', KEYS[i], 'last_job')
    local state, finished = false, false
    if last then
      local f = redis.call('HMGET', KEYS[1] .. last, 'state', 'finished_at')
      state, finished = f[1] or false, f[2] or false
    end
    out[#out + 1] = {h, state, finished}
  end
end
return out
