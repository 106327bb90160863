-- enqueue_dedup: enqueue.lua for a batch holding jobs with a dedup mode or an expiry
-- (conveyor/dedup.py), all or none, in order: a later job of the batch folds into an
-- earlier one exactly as a later call would. A job whose dedup mode folds it (see
-- includes/dedup.lua), whose key (key=) is held, or whose id exists, is not stored: the
-- existing job is returned instead. Kept apart from enqueue.lua so that jobs without
-- these options pay nothing for them.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py);
--              the dedup holders and the expiring set are "<meta>:dedup", "<meta>:expiring"
-- KEYS[14]     when indexing here: the set of queue names (joined at a queue's first job)
-- KEYS[15..]   when indexing here: the id index shards the jobs' ids fall in
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      queue name
-- ARGV[3]      '1': index the ids here; '0': the caller did
-- ARGV[4..]    17 values per job: enqueue.lua's first 10, then the dedup key ('' = none), mode
--              (finished, started, throttle, debounce, keep_last), window ms (throttle's
--              ttl, debounce's quiet time), max wait ms ('' = none), replace ('1'/'0'),
--              expires in ms ('' = never), and last the flow group ('' = none; as in
--              enqueue.lua, whose 11th value it is)
-- Returns as enqueue.lua: {1, created_at, scheduled_at, state} when stored,
-- {0, <the existing job's fields as HGETALL>} when folded or when its key or id exists,
-- {2, queue} when its id is indexed to another queue (nothing stored for it).

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "dedup"
--- @include "expiry"
--- @include "flow"

local now = now_ms()
local t = int(now)
local queue = ARGV[2]
local indexing = ARGV[3] == '1'
local out = {}
local meta = redis.call('HMGET', META, 'seq', 'ev', 'flow')
FLOW_ON = meta[3] == '1'
local PER_JOB = 17
if not FLOW_ON then
  for a = 4, #ARGV, PER_JOB do
    if ARGV[a + 16] ~= '' then flow_turn_on() break end
  end
end
local seq = tonumber(meta[1] or 0)
events_prime(meta[2])
local stored, woken = 0, 0

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
  return nil
end

local function held(key)
  if key == '' then return nil end
  local holder = redis.call('HGET', DEDUP, key)
  if holder and redis.call('EXISTS', job_key(holder)) == 1 then
    return {0, redis.call('HGETALL', job_key(holder))}
  end
  return nil
end

local function store(a, after)
  local id, key, dkey = ARGV[a], ARGV[a + 5], ARGV[a + 10]
  seq = seq + 1
  local seq_text = int(seq)
  local due = now + tonumber(ARGV[a + 6])
  if ARGV[a + 7] ~= '' then due = tonumber(ARGV[a + 7]) end
  if after then
    due = tonumber(DEDUP_PARKED_AT)
    dedup_park(id, after)
  end
  if due < 0 then due = 0 end
  local state, due_text = 'waiting', t
  if due > now then state = 'delayed' end
  if due ~= now then due_text = int(due) end
  local jk = job_key(id)
  redis.call('HSET', jk, 'id', id, 'queue', queue, 'task', ARGV[a + 1],
             'call', ARGV[a + 2], 'opts', ARGV[a + 3], 'state', state,
             'priority', ARGV[a + 4], 'max_stalls', ARGV[a + 8], 'created_at', t,
             'scheduled_at', due_text, 'seq', seq_text,
             'ev', emit_state(now, id, state, '0'))
  if key ~= '' then
    redis.call('HSET', jk, 'key', key)
    redis.call('HSET', DEDUP, key, id)
  end
  if dkey ~= '' then
    redis.call('HSET', jk, 'dk', dkey)
    dedup_take(dkey, id)
  end
  if ARGV[a + 16] ~= '' then redis.call('HSET', jk, 'flow', ARGV[a + 16]) end
  if ARGV[a + 15] ~= '' then
    local expires = int(now + tonumber(ARGV[a + 15]))
    redis.call('HSET', jk, 'exp', expires)
    redis.call('ZADD', EXPIRING, expires, id)
  end
  redis.call('ZADD', JOBS, 0, order_member_text(t, seq_text, id))
  if state == 'delayed' then
    redis.call('ZADD', DELAYED, due_text, id)
  else
    local member = order_member_text(due_text, seq_text, id)
    redis.call('ZADD', WAITING, waiting_score(ARGV[a + 4]), member)
    if FLOW_ON then flow_file(id, waiting_score(ARGV[a + 4]), member) end
    woken = woken + 1
  end
  stored = stored + 1
  return {1, now, due, state}
end

for a = 4, #ARGV, PER_JOB do
  local reply, after = nil, nil
  if ARGV[a + 10] ~= '' then
    reply, after = dedup_fold(now, ARGV[a + 10], ARGV[a + 11], tonumber(ARGV[a + 12]),
                              ARGV[a + 13], ARGV[a + 14], ARGV[a + 2])
  end
  reply = reply or held(ARGV[a + 5]) or taken(ARGV[a], ARGV[a + 9])
  out[#out + 1] = reply or store(a, after)
end

if stored > 0 then
  if indexing and not meta[1] then redis.call('SADD', KEYS[14], queue) end  -- a new queue
  if woken > 0 then wake(woken) end
  events_done('seq', int(seq))
else
  events_done()
end
return out
