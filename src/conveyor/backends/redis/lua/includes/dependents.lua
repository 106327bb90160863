-- Flows (conveyor/flows, issue 13; flow control is includes/flow.lua): releasing,
-- ending and reviving the jobs that wait for others, inside the script of the step that decides it (settle, rescue, cancel, retry), so no
-- crash can separate a dependency's end from its dependents' release. Needs "clock",
-- "queue" and "events". A flow lives in one queue (one Cluster slot); its keys are named
-- from the job prefix ("P:{q:Q}:job:" -> "P:{q:Q}:..."), see keyspace.py:
--   waiting_children  zset  jobs waiting for dependencies (state waiting-children)
--   waits:<id>     set   the dependencies of <id> not resolved yet (SREM: exactly once)
-- A job others wait for holds `children` (JSON [[id, policy], ...]) in its hash: the one
-- field a settle reads for flows, absent from every other job.

local DEPS_BASE = string.sub(JOB, 1, -5)
local BLOCKED = DEPS_BASE .. 'waiting_children'

local function waits_key(id)
  return DEPS_BASE .. 'waits:' .. id
end

-- waiting-children -> waiting, behind the jobs already due.
local function dependents_release_one(now, id)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'priority', 'seq', 'attempt')
  redis.call('ZREM', BLOCKED, id)
  redis.call('HSET', jk, 'state', 'waiting', 'scheduled_at', int(now),
             'ev', emit_state(now, id, 'waiting', num(f[3])))
  add_waiting(id, f[1], now, f[2])
  wake(1)
end

-- A dependent ended by its edge's policy (skip: cancelled, else failed), the error naming
-- the dependency. Returns its new state and its own children (or nil).
local function dependents_end_one(now, id, policy, parent, parent_state, parent_task)
  local jk = job_key(id)
  local state = 'failed'
  if policy == 'skip' then state = 'cancelled' end
  local f = redis.call('HMGET', jk, 'attempt', 'errors', 'children')
  local attempt = num(f[1])
  local message = 'dependency ' .. parent .. ' (' .. parent_task .. ') ended ' .. parent_state
  local entry = '{"attempt":' .. attempt .. ',"type":"DependencyFailed","dependency":' ..
                cjson.encode(parent) .. ',"message":' .. cjson.encode(message) ..
                ',"traceback":null,"at":' .. int(now) .. '}'
  redis.call('ZREM', BLOCKED, id)
  redis.call('HSET', jk, 'state', state, 'finished_at', int(now),
             'errors', append_json(f[2], entry),
             'ev', emit_state(now, id, state, attempt,
                              cjson.encode('DependencyFailed: ' .. message)))
  redis.call('ZADD', FINISHED[state], now, id)
  return state, f[3]
end

-- Job `id` (whose hash holds `children`) ended `state`: resolve the edges it satisfies,
-- release the dependents left with nothing to wait for, end the others by policy, and
-- go on through the dependents it ended (a list, not recursion: any depth).
local function dependents_done(now, id, state, children)
  local work = {{id, state, children}}
  local i = 1
  while i <= #work do
    local pid, pstate, kids = work[i][1], work[i][2], cjson.decode(work[i][3])
    local ptask = nil
    i = i + 1
    for _, edge in ipairs(kids) do
      local cid, policy = edge[1], edge[2]
      if pstate == 'completed' or policy == 'continue' then
        if redis.call('SREM', waits_key(cid), pid) == 1 then
          local left = redis.call('HINCRBY', job_key(cid), 'waits', -1)
          if left <= 0 and redis.call('HGET', job_key(cid), 'state') == 'waiting-children' then
            dependents_release_one(now, cid)
          end
        end
      elseif redis.call('HGET', job_key(cid), 'state') == 'waiting-children' then
        ptask = ptask or redis.call('HGET', job_key(pid), 'task') or '?'
        local cstate, ckids = dependents_end_one(now, cid, policy, pid, pstate, ptask)
        if ckids then work[#work + 1] = {cid, cstate, ckids} end
      end
    end
  end
end

-- Whether a dependency of `id` other than `except` still holds it failed.
local function dependents_held(id, parents_json, except)
  local policies = cjson.decode(parents_json or '{}')
  for _, p in ipairs(redis.call('SMEMBERS', waits_key(id))) do
    if p ~= except and policies[p] ~= 'continue' then
      local s = redis.call('HGET', job_key(p), 'state')
      if s == 'failed' or s == 'cancelled' then return true end
    end
  end
  return false
end

-- Job `id` (with `children`) was retried: the dependents it ended wait for it again,
-- unless another dependency still holds them failed; and so on down the flow.
local function dependents_revived(now, id, children)
  local work = {{id, children}}
  local i = 1
  while i <= #work do
    local pid, kids = work[i][1], cjson.decode(work[i][2])
    i = i + 1
    for _, edge in ipairs(kids) do
      local cid = edge[1]
      local ck = job_key(cid)
      local f = redis.call('HMGET', ck, 'state', 'errors', 'parents', 'children', 'attempt')
      if (f[1] == 'failed' or f[1] == 'cancelled')
          and redis.call('SISMEMBER', waits_key(cid), pid) == 1 then
        local errors = cjson.decode(f[2] or '[]')
        local last = errors[#errors]
        if last and last['type'] == 'DependencyFailed' and not dependents_held(cid, f[3], pid) then
          redis.call('ZREM', FINISHED[f[1]], cid)
          redis.call('HDEL', ck, 'finished_at')
          redis.call('HSET', ck, 'state', 'waiting-children',
                     'ev', emit_state(now, cid, 'waiting-children', num(f[5])))
          redis.call('ZADD', BLOCKED, now, cid)
          if f[4] then work[#work + 1] = {cid, f[4]} end
        end
      end
    end
  end
end
