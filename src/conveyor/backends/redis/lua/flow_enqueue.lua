-- flow_enqueue: store one flow (conveyor/flows), all of it or none: every job of a flow
-- lives in this queue (one Cluster slot). Jobs with dependencies start waiting-children
-- (in the blocked set, with the set of their unresolved dependencies), the others
-- waiting or delayed; the ids are indexed by the caller before the call.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      queue name
-- ARGV[3]      the flow's id
-- ARGV[4..]    10 values per job: id, task, call JSON, opts JSON (as enqueue.lua), priority,
--              delay_ms, run_at_ms ('' = none), max_stalls, parents (JSON {id: policy},
--              '' = none), children (JSON [[id, policy], ...], '' = none)
-- Returns {1, now, {scheduled_at, ...}} when stored, or {0, id} for an id that exists
-- (nothing stored).

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "dependents"

local now = now_ms()
local t = int(now)
local queue, flow_id = ARGV[2], ARGV[3]
for a = 4, #ARGV, 10 do
  if redis.call('EXISTS', job_key(ARGV[a])) == 1 then return {0, ARGV[a]} end
end
local meta = redis.call('HMGET', META, 'seq', 'ev')
local seq = tonumber(meta[1] or 0)
events_prime(meta[2])
local listed, members, waiting, delayed, blocked, due_out = {}, {}, {}, {}, {}, {}

for a = 4, #ARGV, 10 do
  local id, parents, children = ARGV[a], ARGV[a + 8], ARGV[a + 9]
  seq = seq + 1
  local seq_text = int(seq)
  local due = now + tonumber(ARGV[a + 5])
  if ARGV[a + 6] ~= '' then due = tonumber(ARGV[a + 6]) end
  if due < 0 then due = 0 end
  local state = 'waiting'
  if parents ~= '' then state = 'waiting-children'
  elseif due > now then state = 'delayed' end
  local jk = job_key(id)
  redis.call('HSET', jk, 'id', id, 'queue', queue, 'task', ARGV[a + 1], 'call', ARGV[a + 2],
             'opts', ARGV[a + 3], 'state', state, 'priority', ARGV[a + 4],
             'max_stalls', ARGV[a + 7], 'created_at', t, 'scheduled_at', int(due),
             'seq', seq_text, 'ev', emit_state(now, id, state, '0'), 'flow_id', flow_id)
  if parents ~= '' then
    local ids = {}
    for p, _ in pairs(cjson.decode(parents)) do ids[#ids + 1] = p end
    redis.call('SADD', waits_key(id), unpack(ids))
    redis.call('HSET', jk, 'parents', parents, 'waits', #ids)
    blocked[#blocked + 1] = t
    blocked[#blocked + 1] = id
  elseif state == 'delayed' then
    delayed[#delayed + 1] = int(due)
    delayed[#delayed + 1] = id
  else
    waiting_pair(waiting, id, ARGV[a + 4], due, seq)
  end
  if children ~= '' then redis.call('HSET', jk, 'children', children) end
  listed[#listed + 1] = '0'
  listed[#listed + 1] = order_member_text(t, seq_text, id)
  members[#members + 1] = seq
  members[#members + 1] = id
  due_out[#due_out + 1] = due
end

call_chunked('ZADD', JOBS, listed)
call_chunked('ZADD', DEPS_BASE .. 'flowjobs:' .. flow_id, members)
if #blocked > 0 then call_chunked('ZADD', BLOCKED, blocked) end
if #delayed > 0 then call_chunked('ZADD', DELAYED, delayed) end
if #waiting > 0 then
  call_chunked('ZADD', WAITING, waiting)
  wake(#waiting / 2)
end
events_done('seq', int(seq))
return {1, now, due_out}
