-- Deleting a job that is not running: its hash, its place in every set, its dedup key;
-- a tombstone remembers when, so a lookup can answer "removed" instead of "unknown".

local STATE_SETS = {delayed = DELAYED, completed = COMPLETED, failed = FAILED,
                    cancelled = CANCELLED, active = ACTIVE,
                    ['waiting-children'] = string.sub(JOB, 1, -5) .. 'waiting_children'}

local function remove_job(now, id)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'created_at', 'seq', 'key', 'priority',
                       'scheduled_at', 'dk', 'flow_id')
  if not f[1] then
    return 0
  end
  if f[1] == 'waiting' then
    remove_waiting(id, f[5], f[6], f[3])
  else
    redis.call('ZREM', STATE_SETS[f[1]], id)
  end
  redis.call('ZREM', JOBS, order_member(tonumber(f[2]), tonumber(f[3]), id))
  if f[4] and redis.call('HGET', DEDUP, f[4]) == id then
    redis.call('HDEL', DEDUP, f[4])
  end
  if f[7] and redis.call('HGET', META .. ':dedup', f[7]) == id then
    redis.call('HDEL', META .. ':dedup', f[7])  -- a dedup mode's key (includes/dedup.lua)
  end
  if f[8] then  -- a flow's job (includes/dependents.lua): its flow keys go with it
    local base = string.sub(JOB, 1, -5)
    redis.call('ZREM', base .. 'flowjobs:' .. f[8], id)
    redis.call('DEL', base .. 'waits:' .. id)
  end
  redis.call('DEL', jk)
  redis.call('ZADD', TOMBSTONES, now, id)
  return 1
end
