-- schedule_fire: one scheduler decision for one schedule, applied atomically or refused.
-- Refused (nothing changes) when the schedule's version is not the one the decision was
-- planned from, or a tick is later than Redis' clock. Else: cancel an expired run that
-- is still waiting or delayed; release the buffered tick (overlap "queue") if asked;
-- store each tick's job under the tick's dedup key unless the overlap policy holds it
-- back (a job already holding the key is returned, not stored again); advance the next
-- run; add to the counters; bump the version. The schedule's hash lives in its queue's
-- slot, so the whole firing is one script on one Cluster slot.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- KEYS[14]     the schedule's hash
-- KEYS[15]     when indexing here: the set of queue names
-- KEYS[16..]   when indexing here: the id index shards of the jobs' ids
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      queue name
-- ARGV[3]      '1': index the ids here; '0': the caller did
-- ARGV[4]      the version the decision was planned from
-- ARGV[5]      '1': set the next run to ARGV[6]; '0': leave it (a manual trigger)
-- ARGV[6]      next run in ms ('' = none: the schedule ended)
-- ARGV[7]      ticks the misfire policy dropped
-- ARGV[8]      '1': a manual trigger, the overlap policy does not apply
-- ARGV[9]      the buffered tick to release ('' = none)
-- ARGV[10]     id of a run to cancel if still waiting or delayed ('' = none)
-- ARGV[11]     its error entry (JSON object without "at"), ARGV[12] its summary (JSON)
-- ARGV[13..]   12 values per tick: tick ms, then the 11 values enqueue.lua takes per job
--              (id, task, call, opts, priority, key, delay_ms, run_at_ms, max_stalls,
--              KEYS position of its id's index shard or '', flow group or '')
-- Returns {applied 1/0, version, skipped by overlap, buffered 1/0, expired 1/0, job ids...}

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "flow"

local SCHEDULE = KEYS[14]
local now = now_ms()
FLOW_ON = redis.call('HGET', META, 'flow') == '1'  -- file its jobs in the flow group ''
local t = int(now)
local queue, indexing = ARGV[2], ARGV[3] == '1'
local s = redis.call('HMGET', SCHEDULE, 'version', 'last_job', 'overlap', 'pending_tick_at')
if s[1] ~= ARGV[4] then return {0, 0, 0, 0, 0} end
for a = 13, #ARGV, 12 do
  if tonumber(ARGV[a]) > now then return {0, 0, 0, 0, 0} end
end
local last_job, overlap, pending = s[2], s[3], s[4]
local meta = redis.call('HMGET', META, 'seq', 'ev')
local seq = tonumber(meta[1] or 0)
events_prime(meta[2])

local function state_of(id)
  if not id then return nil end
  return redis.call('HGET', job_key(id), 'state')
end

local function expire(id)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'priority', 'scheduled_at', 'seq', 'attempt',
                       'errors')
  if f[1] ~= 'waiting' and f[1] ~= 'delayed' then return 0 end
  if f[1] == 'waiting' then remove_waiting(id, f[2], f[3], f[4]) else
    redis.call('ZREM', DELAYED, id)
  end
  redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', t,
             'errors', append_json(f[6], stamp(ARGV[11], now)),
             'ev', emit_state(now, id, 'cancelled', num(f[5]), ARGV[12]))
  redis.call('ZADD', CANCELLED, now, id)
  return 1
end

-- Store the job whose 11 enqueue values start at ARGV[a]; its id, and whether it is new.
local function store(a)
  local id, key = ARGV[a], ARGV[a + 5]
  local holder = redis.call('HGET', DEDUP, key)
  if holder and redis.call('EXISTS', job_key(holder)) == 1 then return holder, false end
  if indexing then redis.call('HSET', KEYS[tonumber(ARGV[a + 9])], id, queue) end
  seq = seq + 1
  local seq_text = int(seq)
  local due = now + tonumber(ARGV[a + 6])
  if ARGV[a + 7] ~= '' then due = math.max(tonumber(ARGV[a + 7]), 0) end
  local state = 'waiting'
  if due > now then state = 'delayed' end
  local due_text = int(due)
  redis.call('HSET', job_key(id), 'id', id, 'queue', queue, 'task', ARGV[a + 1],
             'call', ARGV[a + 2], 'opts', ARGV[a + 3], 'state', state,
             'priority', ARGV[a + 4], 'max_stalls', ARGV[a + 8], 'created_at', t,
             'scheduled_at', due_text, 'seq', seq_text, 'key', key,
             'ev', emit_state(now, id, state, '0'))
  if ARGV[a + 10] ~= '' then  -- the task has limits (includes/flow.lua)
    redis.call('HSET', job_key(id), 'flow', ARGV[a + 10])
    flow_turn_on()
  end
  redis.call('HSET', DEDUP, key, id)
  redis.call('ZADD', JOBS, 0, order_member_text(t, seq_text, id))
  if state == 'delayed' then
    redis.call('ZADD', DELAYED, due, id)
  else
    local member = order_member_text(due_text, seq_text, id)
    redis.call('ZADD', WAITING, waiting_score(ARGV[a + 4]), member)
    if FLOW_ON then flow_file(id, waiting_score(ARGV[a + 4]), member) end  -- includes/flow.lua
    wake(1)
  end
  return id, true
end

local last_state = state_of(last_job)
local updates = {'version', tonumber(s[1]) + 1, 'updated_at', t}
if last_state == 'completed' then
  updates[#updates + 1] = 'last_success_at'
  updates[#updates + 1] = redis.call('HGET', job_key(last_job), 'finished_at')
end
local expired = 0
if ARGV[10] ~= '' then
  expired = expire(ARGV[10])
  if expired == 1 and ARGV[10] == last_job then last_state = 'cancelled' end
end
if ARGV[9] ~= '' and ARGV[9] == pending then pending = false end
local busy = last_state == 'waiting' or last_state == 'delayed' or last_state == 'active'
local out = {1, 0, 0, 0, expired}
local skipped, stored, buffered = 0, 0, 0
for a = 13, #ARGV, 12 do
  if busy and ARGV[8] ~= '1' and overlap ~= 'allow' then
    if overlap == 'queue' then
      if pending and pending ~= ARGV[a] then skipped = skipped + 1 end
      pending, buffered = ARGV[a], 1
    else
      skipped = skipped + 1
    end
  else
    local id, created = store(a + 1)
    out[#out + 1] = id
    if created then stored = stored + 1 end
    busy = true
    for _, v in ipairs({'last_job', id, 'last_tick_at', ARGV[a], 'last_run_at', t}) do
      updates[#updates + 1] = v
    end
  end
end
if ARGV[5] == '1' then
  updates[#updates + 1] = 'next_run_at'
  updates[#updates + 1] = ARGV[6]
end
redis.call('HSET', SCHEDULE, unpack(updates))
if pending then redis.call('HSET', SCHEDULE, 'pending_tick_at', pending) else
  redis.call('HDEL', SCHEDULE, 'pending_tick_at')
end
redis.call('HINCRBY', SCHEDULE, 'enqueued', stored)
redis.call('HINCRBY', SCHEDULE, 'skipped_overlap', skipped)
redis.call('HINCRBY', SCHEDULE, 'skipped_misfire', tonumber(ARGV[7]))
redis.call('HINCRBY', SCHEDULE, 'expired', expired)
if stored > 0 then
  if indexing and not meta[1] then redis.call('SADD', KEYS[15], queue) end
  events_done('seq', int(seq))
else
  events_done()
end
out[2], out[3], out[4] = tonumber(s[1]) + 1, skipped, buffered
return out
