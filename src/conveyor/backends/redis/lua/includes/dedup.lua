-- Dedup modes (conveyor/dedup.py says them in words; sqlite/dedup.py is the same table):
-- an enqueue folds into the newest job that took its dedup key when that job's state
-- says so. Keys: "<meta key>:dedup" (hash dedup key -> newest job id) and
-- "<meta key>:parked" (below), in the queue's Cluster slot. Judged from the job's state,
-- never from a lock with a time to live.
-- Needs "clock", "queue" and "events".

local DEDUP_HOLDERS = META .. ':dedup'
local dedup_taken = {}  -- dedup keys taken earlier in this same call: key -> id

-- Whether an enqueue of `mode` folds into a job of this state.
local function dedup_folds(mode, window, state, started, created_at, now)
  if mode == 'finished' then
    return state == 'waiting' or state == 'delayed' or state == 'active'
  elseif mode == 'throttle' then
    return now < tonumber(created_at) + window
  end
  return (state == 'waiting' or state == 'delayed') and not started
end

-- The fold: {0, <the holder's fields>}; or nil and, for keep_last while the holder
-- runs, the holder's id (the new job waits parked until it leaves `active`).
-- A debounce pushes the holder's due time; replace gives it the new call's arguments.
local function dedup_fold(now, dkey, mode, window, max_wait, replace, call)
  local id = dedup_taken[dkey] or redis.call('HGET', DEDUP_HOLDERS, dkey)
  if not id then return nil end
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'attempt', 'stalls', 'created_at',
                       'scheduled_at', 'priority', 'seq')
  if not f[1] then return nil end
  local started = num(f[2]) + num(f[3]) > 0
  if not dedup_folds(mode, window, f[1], started, f[4], now) then
    if mode == 'keep_last' and f[1] == 'active' then return nil, id end
    return nil
  end
  if replace == '1' then redis.call('HSET', jk, 'call', call) end
  if mode == 'debounce' then
    local due = now + window
    if max_wait ~= '' then due = math.min(due, tonumber(f[4]) + tonumber(max_wait)) end
    if due > now then
      local due_text = int(due)
      if f[1] == 'waiting' then
        remove_waiting(id, f[6], f[5], f[7])
        redis.call('HSET', jk, 'state', 'delayed', 'scheduled_at', due_text,
                   'ev', emit_state(now, id, 'delayed', '0'))
      else
        redis.call('HSET', jk, 'scheduled_at', due_text)
      end
      redis.call('ZADD', DELAYED, due_text, id)
    end
  end
  return {0, redis.call('HGETALL', jk)}
end

-- A new job took the key.
local function dedup_take(dkey, id)
  dedup_taken[dkey] = id
  redis.call('HSET', DEDUP_HOLDERS, dkey, id)
end

-- keep_last's copy stored while its key's job runs: delayed at DEDUP_PARKED_AT, listed in
-- "<meta key>:parked" (zset, member id) with the running job's id in its field 'after'.
local DEDUP_PARKED = META .. ':parked'
local DEDUP_PARKED_AT = '253402300799000'  -- 9999-12-31T23:59:59Z, dedup.py's PARKED_AT

local function dedup_park(id, after)
  redis.call('HSET', job_key(id), 'after', after)
  redis.call('ZADD', DEDUP_PARKED, 0, id)
end

-- Parked copies whose running job left `active` (settled, rescued, cancelled, removed)
-- become waiting now; fetch calls this before it claims.
local function dedup_unpark(now)
  local parked = redis.call('ZRANGE', DEDUP_PARKED, 0, -1)
  if #parked == 0 then return end
  local done, moved = {}, {}
  for _, id in ipairs(parked) do
    local jk = job_key(id)
    local f = redis.call('HMGET', jk, 'state', 'scheduled_at', 'after', 'priority', 'seq')
    if f[1] ~= 'delayed' or f[2] ~= DEDUP_PARKED_AT then
      done[#done + 1] = id  -- gone, cancelled or promoted meanwhile
    elseif redis.call('HGET', job_key(f[3]), 'state') ~= 'active' then
      done[#done + 1] = id
      redis.call('ZREM', DELAYED, id)
      redis.call('HSET', jk, 'state', 'waiting', 'scheduled_at', now_text(now),
                 'ev', emit_state(now, id, 'waiting', '0'))
      waiting_pair(moved, id, f[4], now, f[5])
    end
  end
  if #done > 0 then call_chunked('ZREM', DEDUP_PARKED, done) end
  if #moved > 0 then
    call_chunked('ZADD', WAITING, moved)
    wake(#moved / 2)
  end
end
