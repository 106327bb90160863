-- spawn: a running job stores children it waits for (conveyor/flows: current_job().spawn),
-- all of them or none, refused unless its lease holds. Each child is a dependency of
-- the job with policy "continue" (it runs again whatever they end as) and lives in its
-- flow (the job's own id when it has none). The ids are indexed by the caller first.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      queue name
-- ARGV[3]      the running job's id
-- ARGV[4]      its lease token
-- ARGV[5..]    8 values per child: id, task, call JSON, opts JSON (as enqueue.lua),
--              priority, delay_ms, run_at_ms ('' = none), max_stalls
-- Returns {1, now, flow id, {scheduled_at, ...}}, {0} when the lease is lost, or
-- {2, id} for a child id that exists (nothing stored).

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "dependents"

local now = now_ms()
local t = int(now)
local queue, parent, token = ARGV[2], ARGV[3], ARGV[4]
local pk = job_key(parent)
local p = redis.call('HMGET', pk, 'state', 'token', 'flow_id', 'parents')
if p[1] ~= 'active' or p[2] ~= token then return {0} end
for a = 5, #ARGV, 8 do
  if redis.call('EXISTS', job_key(ARGV[a])) == 1 then return {2, ARGV[a]} end
end
local flow_id = p[3] or parent
local flow_key = DEPS_BASE .. 'flowjobs:' .. flow_id
local meta = redis.call('HMGET', META, 'seq', 'ev')
local seq = tonumber(meta[1] or 0)
events_prime(meta[2])
if not p[3] then
  redis.call('HSET', pk, 'flow_id', flow_id)
  redis.call('ZADD', flow_key, redis.call('HGET', pk, 'seq') or 0, parent)
end
local edges = cjson.decode(p[4] or '{}')
local ids, listed, members, waiting, delayed, due_out = {}, {}, {}, {}, {}, {}
local back = cjson.encode({{parent, 'continue'}})
for a = 5, #ARGV, 8 do
  local id = ARGV[a]
  seq = seq + 1
  local seq_text = int(seq)
  local due = now + tonumber(ARGV[a + 5])
  if ARGV[a + 6] ~= '' then due = tonumber(ARGV[a + 6]) end
  if due < 0 then due = 0 end
  local state = 'waiting'
  if due > now then state = 'delayed' end
  redis.call('HSET', job_key(id), 'id', id, 'queue', queue, 'task', ARGV[a + 1],
             'call', ARGV[a + 2], 'opts', ARGV[a + 3], 'state', state,
             'priority', ARGV[a + 4], 'max_stalls', ARGV[a + 7], 'created_at', t,
             'scheduled_at', int(due), 'seq', seq_text, 'ev', emit_state(now, id, state, '0'),
             'flow_id', flow_id, 'children', back)
  if state == 'delayed' then
    delayed[#delayed + 1] = int(due)
    delayed[#delayed + 1] = id
  else
    waiting_pair(waiting, id, ARGV[a + 4], due, seq)
  end
  ids[#ids + 1] = id
  edges[id] = 'continue'
  listed[#listed + 1] = '0'
  listed[#listed + 1] = order_member_text(t, seq_text, id)
  members[#members + 1] = seq
  members[#members + 1] = id
  due_out[#due_out + 1] = due
end
call_chunked('SADD', waits_key(parent), ids)
redis.call('HINCRBY', pk, 'waits', #ids)
redis.call('HSET', pk, 'parents', cjson.encode(edges))
call_chunked('ZADD', JOBS, listed)
call_chunked('ZADD', flow_key, members)
if #delayed > 0 then call_chunked('ZADD', DELAYED, delayed) end
if #waiting > 0 then
  call_chunked('ZADD', WAITING, waiting)
  wake(#waiting / 2)
end
events_done('seq', int(seq))
return {1, now, flow_id, due_out}
