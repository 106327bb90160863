-- enqueue: store a batch of new jobs of one queue, all or none. A job whose dedup key is
-- held, or whose id exists, is not stored: the existing job is returned instead.
-- New jobs get a "waiting" or "delayed" event and wake idle workers.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (XADD MAXLEN ~)
-- ARGV[2]      queue name
-- ARGV[3..]    13 values per job: id, task, args JSON, kwargs JSON, priority, dedup key
--              ('' = none), delay_ms, run_at_ms ('' = none), max_attempts, max_stalls,
--              timeout seconds ('' = none), backoff JSON ('' = none), meta JSON
-- Returns one entry per job: {1, created_at, scheduled_at, state} when stored, or
-- {0, <the existing job's fields as HGETALL>}.

--- @include "clock"
--- @include "queue"
--- @include "events"

local now = now_ms()
local t = int(now)
local queue = ARGV[2]
local out = {}
local meta = redis.call('HMGET', META, 'seq', 'ev')
local seq = tonumber(meta[1] or 0)
events_prime(meta[2])
local listed, waiting, delayed, keys = {}, {}, {}, {}
local held = {}  -- dedup keys taken earlier in this same call

for a = 3, #ARGV, 13 do
  local id, key = ARGV[a], ARGV[a + 5]
  local existing = nil
  if key ~= '' then
    local holder = held[key] or redis.call('HGET', DEDUP, key)
    if holder and (held[key] or redis.call('EXISTS', job_key(holder)) == 1) then
      existing = holder
    end
  end
  if not existing and redis.call('EXISTS', job_key(id)) == 1 then existing = id end
  if existing then
    out[#out + 1] = {0, redis.call('HGETALL', job_key(existing))}
  else
    seq = seq + 1
    local due = now + tonumber(ARGV[a + 6])
    if ARGV[a + 7] ~= '' then due = tonumber(ARGV[a + 7]) end
    if due < 0 then due = 0 end
    local state = 'waiting'
    if due > now then state = 'delayed' end
    local jk = job_key(id)
    redis.call('HSET', jk, 'id', id, 'queue', queue, 'task', ARGV[a + 1],
               'args', ARGV[a + 2], 'kwargs', ARGV[a + 3], 'state', state,
               'priority', ARGV[a + 4], 'max_attempts', ARGV[a + 8],
               'max_stalls', ARGV[a + 9], 'meta', ARGV[a + 12], 'created_at', t,
               'scheduled_at', int(due), 'seq', seq, 'ev', emit_state(now, id, state, 0))
    if key ~= '' then
      redis.call('HSET', jk, 'key', key)
      held[key] = id
      keys[#keys + 1] = key
      keys[#keys + 1] = id
    end
    if ARGV[a + 10] ~= '' then redis.call('HSET', jk, 'timeout', ARGV[a + 10]) end
    if ARGV[a + 11] ~= '' then redis.call('HSET', jk, 'backoff', ARGV[a + 11]) end
    listed[#listed + 1] = 0
    listed[#listed + 1] = order_member(now, seq, id)
    if state == 'delayed' then
      delayed[#delayed + 1] = int(due)
      delayed[#delayed + 1] = id
    else
      waiting_pair(waiting, id, ARGV[a + 4], due, seq)
    end
    out[#out + 1] = {1, now, due, state}
  end
end

if #listed > 0 then
  call_chunked('ZADD', JOBS, listed)
  if #keys > 0 then call_chunked('HSET', DEDUP, keys) end
  if #delayed > 0 then call_chunked('ZADD', DELAYED, delayed) end
  if #waiting > 0 then
    call_chunked('ZADD', WAITING, waiting)
    wake(#waiting / 2)
  end
end
if #listed > 0 then
  events_done('seq', seq)
end
return out
