-- enqueue: store a batch of new jobs of one queue, all or none. A job whose dedup key is
-- held, or whose id exists, is not stored: the existing job is returned instead.
-- New jobs get a "waiting" or "delayed" event and wake idle workers.
-- On one server the script also indexes the ids (keyspace.py) and registers the queue, so
-- an enqueue is one round trip; on Cluster those keys live in other slots and the caller
-- has indexed the ids before the call.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- KEYS[14]     when indexing here: the set of queue names (joined at a queue's first job)
-- KEYS[15..]   when indexing here: the id index shards the jobs' ids fall in
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      queue name
-- ARGV[3]      '1': index the ids here; '0': the caller did
-- ARGV[4..]    11 values per job: id, task, call JSON ([args, kwargs]), opts JSON
--              ([max_attempts, timeout, backoff, meta]), priority, dedup key ('' = none),
--              delay_ms, run_at_ms ('' = none), max_stalls, the KEYS position of its
--              id's index shard ('' when not indexing here), and its flow group ('' =
--              none; includes/flow.lua: stored as the job's field flow, and a waiting job
--              of a queue with flow control is filed in its group)
-- Returns one entry per job: {1, created_at, scheduled_at, state} when stored,
-- {0, <the existing job's fields as HGETALL>} when a job with its key or id exists here,
-- or {2, queue} when its id is indexed to another queue (nothing stored for it).

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "flow"

local now = now_ms()
local t = int(now)
local queue = ARGV[2]
local indexing = ARGV[3] == '1'
local out = {}
local meta = redis.call('HMGET', META, 'seq', 'ev', 'flow')
FLOW_ON = meta[3] == '1'
local PER_JOB = 11
if not FLOW_ON then
  for a = 4, #ARGV, PER_JOB do
    if ARGV[a + 10] ~= '' then flow_turn_on() break end
  end
end
local seq = tonumber(meta[1] or 0)
events_prime(meta[2])
local listed, waiting, delayed, keys = {}, {}, {}, {}
local held = {}  -- dedup keys taken earlier in this same call

-- Claim the id for this queue: nil when it is free here, else the reply for the caller.
local function taken(id, shard)
  if not indexing then
    if redis.call('EXISTS', job_key(id)) == 1 then
      return {0, redis.call('HGETALL', job_key(id))}
    end
    return nil
  end
  local index = KEYS[tonumber(shard)]
  if redis.call('HSETNX', index, id, queue) == 1 then return nil end
  local owner = redis.call('HGET', index, id)
  if owner ~= queue then return {2, owner} end
  local existing = redis.call('HGETALL', job_key(id))
  if #existing > 0 then return {0, existing} end
  return nil  -- indexed here but removed: the id is free again
end

for a = 4, #ARGV, PER_JOB do
  local id, key = ARGV[a], ARGV[a + 5]
  local reply = nil
  if key ~= '' then
    local holder = held[key] or redis.call('HGET', DEDUP, key)
    if holder and (held[key] or redis.call('EXISTS', job_key(holder)) == 1) then
      reply = {0, redis.call('HGETALL', job_key(holder))}
    end
  end
  if not reply then reply = taken(id, ARGV[a + 9]) end
  if reply then
    out[#out + 1] = reply
  else
    seq = seq + 1
    local seq_text = int(seq)
    local due = now + tonumber(ARGV[a + 6])
    if ARGV[a + 7] ~= '' then due = tonumber(ARGV[a + 7]) end
    if due < 0 then due = 0 end
    local state, due_text = 'waiting', t
    if due > now then state = 'delayed' end
    if due ~= now then due_text = int(due) end
    local ev = emit_state(now, id, state, '0')
    -- the arguments as they are, not gathered in a table for unpack: one HSET either way
    if key == '' then
      redis.call('HSET', job_key(id), 'id', id, 'queue', queue, 'task', ARGV[a + 1],
                 'call', ARGV[a + 2], 'opts', ARGV[a + 3], 'state', state,
                 'priority', ARGV[a + 4], 'max_stalls', ARGV[a + 8], 'created_at', t,
                 'scheduled_at', due_text, 'seq', seq_text, 'ev', ev)
    else
      redis.call('HSET', job_key(id), 'id', id, 'queue', queue, 'task', ARGV[a + 1],
                 'call', ARGV[a + 2], 'opts', ARGV[a + 3], 'state', state,
                 'priority', ARGV[a + 4], 'max_stalls', ARGV[a + 8], 'created_at', t,
                 'scheduled_at', due_text, 'seq', seq_text, 'ev', ev, 'key', key)
      held[key] = id
      keys[#keys + 1] = key
      keys[#keys + 1] = id
    end
    if ARGV[a + 10] ~= '' then redis.call('HSET', job_key(id), 'flow', ARGV[a + 10]) end
    local member = order_member_text(t, seq_text, id)
    listed[#listed + 1] = '0'
    listed[#listed + 1] = member
    if state == 'delayed' then
      delayed[#delayed + 1] = due_text
      delayed[#delayed + 1] = id
    else
      waiting[#waiting + 1] = waiting_score(ARGV[a + 4])
      if due ~= now then member = order_member_text(due_text, seq_text, id) end
      waiting[#waiting + 1] = member
      if FLOW_ON then flow_file(id, waiting[#waiting - 1], member) end
    end
    out[#out + 1] = {1, now, due, state}
  end
end

if #listed > 0 then
  if indexing and not meta[1] then redis.call('SADD', KEYS[14], queue) end  -- a new queue
  call_chunked('ZADD', JOBS, listed)
  if #keys > 0 then call_chunked('HSET', DEDUP, keys) end
  if #delayed > 0 then call_chunked('ZADD', DELAYED, delayed) end
  if #waiting > 0 then
    call_chunked('ZADD', WAITING, waiting)
    wake(#waiting / 2)
  end
  events_done('seq', int(seq))
end
return out
