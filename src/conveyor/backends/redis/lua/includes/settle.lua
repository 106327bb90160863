-- Recording the outcome of a running attempt (complete, fail, cancelled, release).
-- Refused unless the job is active under the same lease token. Set changes are gathered
-- and written once per call (settle_done), one ZREM/ZADD for the whole batch.
-- Needs "flow": a job claimed through gates (token ending '+') gives its slots back here.
-- A job that others wait for (flows: `children` in its hash) releases or ends them here,
-- in the same script (dependents.lua); every other job pays one more HMGET field.

--- @include "dependents"

local settle_left = {}  -- ids leaving the active set
local settle_sets = {[COMPLETED] = {}, [FAILED] = {}, [CANCELLED] = {}, [DELAYED] = {},
                     [WAITING] = {}}

-- The job's place in the waiting set: {priority, scheduled_at, seq}. Read only when it
-- goes back there: every field an HMGET asks for costs Redis a lookup and Lua a string.
local function waiting_place(jk)
  return redis.call('HMGET', jk, 'priority', 'scheduled_at', 'seq')
end

local function settle_one(now, id, token, outcome, payload, retry_in_ms, summary)
  local jk = job_key(id)
  local cur = redis.call('HMGET', jk, 'state', 'token', 'attempt', 'children')
  if cur[1] ~= 'active' or cur[2] ~= token then
    return 0
  end
  local attempt = cur[3] or '0'  -- text: an event needs no number formatting
  local t = now_text(now)
  settle_left[#settle_left + 1] = id
  local gated = string.byte(token, -1) == 43  -- '+': claimed through flow gates
  if gated then flow_release(jk) end
  if outcome == 'completed' then
    local eid = emit_state(now, id, 'completed', attempt)
    if payload ~= '' then
      redis.call('HSET', jk, 'state', 'completed', 'finished_at', t, 'token', '', 'ev', eid,
                 'result', payload)
    else
      redis.call('HSET', jk, 'state', 'completed', 'finished_at', t, 'token', '', 'ev', eid)
    end
    local s = settle_sets[COMPLETED]
    s[#s + 1] = t
    s[#s + 1] = id
    if cur[4] then dependents_done(now, id, 'completed', cur[4]) end  -- flows
  elseif outcome == 'failed' then
    local errors = append_json(redis.call('HGET', jk, 'errors'), stamp(payload, now))
    if retry_in_ms == '' then
      local eid = emit_state(now, id, 'failed', attempt, summary)
      redis.call('HSET', jk, 'state', 'failed', 'finished_at', t, 'token', '', 'ev', eid,
                 'errors', errors)
      local s = settle_sets[FAILED]
      s[#s + 1] = t
      s[#s + 1] = id
      if cur[4] then dependents_done(now, id, 'failed', cur[4]) end  -- flows
    else
      local due = now + tonumber(retry_in_ms)
      local state = 'waiting'
      if due > now then state = 'delayed' end
      local eid = emit_state(now, id, state, attempt, summary)
      local due_text = int(due)
      redis.call('HSET', jk, 'state', state, 'scheduled_at', due_text, 'token', '', 'ev', eid,
                 'errors', errors)
      if state == 'delayed' then
        local s = settle_sets[DELAYED]
        s[#s + 1] = due_text
        s[#s + 1] = id
      else
        local place = waiting_place(jk)
        waiting_pair(settle_sets[WAITING], id, place[1], due, place[3])
      end
    end
  elseif outcome == 'cancelled' then
    local with_error = nil
    if payload ~= '' then
      redis.call('HSET', jk, 'errors',
                 append_json(redis.call('HGET', jk, 'errors'), stamp(payload, now)))
      with_error = summary
    end
    local eid = emit_state(now, id, 'cancelled', attempt, with_error)
    redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', t, 'token', '', 'ev', eid)
    local s = settle_sets[CANCELLED]
    s[#s + 1] = t
    s[#s + 1] = id
    if cur[4] then dependents_done(now, id, 'cancelled', cur[4]) end  -- flows
  elseif outcome == 'rate_limited' then
    -- RateLimited from the task: back uncharged. A job with gates waits at its place
    -- with its gates (or the limiter named in payload) paused for retry_in_ms; one
    -- without waits delayed that long.
    attempt = int(num(cur[3]) - 1)
    local due = now + tonumber(retry_in_ms)
    if gated then
      flow_pause(jk, payload, due)
      due = tonumber(redis.call('HGET', jk, 'scheduled_at'))
    end
    local state = 'waiting'
    if due > now then state = 'delayed' end
    local due_text = int(due)
    redis.call('HSET', jk, 'state', state, 'attempt', attempt, 'scheduled_at', due_text,
               'token', '', 'ev', emit_state(now, id, state, attempt))
    redis.call('HDEL', jk, 'worker', 'started_at')
    if state == 'delayed' then
      local s = settle_sets[DELAYED]
      s[#s + 1] = due_text
      s[#s + 1] = id
    else
      local place = waiting_place(jk)
      waiting_pair(settle_sets[WAITING], id, place[1], due, place[3])
    end
  elseif outcome == 'wait_children' then
    -- flows: the attempt spawned children; it waits for them (or is due at once when
    -- they have all finished), then runs again, this attempt not charged
    attempt = int(num(cur[3]) - 1)
    local state = 'waiting'
    if num(redis.call('HGET', jk, 'waits')) > 0 then state = 'waiting-children' end
    redis.call('HSET', jk, 'state', state, 'attempt', attempt, 'scheduled_at', t,
               'token', '', 'ev', emit_state(now, id, state, attempt))
    redis.call('HDEL', jk, 'worker', 'started_at')
    if state == 'waiting' then
      local place = waiting_place(jk)
      waiting_pair(settle_sets[WAITING], id, place[1], now, place[3])
    else
      redis.call('ZADD', BLOCKED, now, id)
    end
  else -- released: waiting again at its old place, the attempt not charged
    attempt = int(num(cur[3]) - 1)
    local eid = emit_state(now, id, 'waiting', attempt)
    redis.call('HSET', jk, 'state', 'waiting', 'attempt', attempt, 'token', '', 'ev', eid)
    redis.call('HDEL', jk, 'worker', 'started_at')
    local place = waiting_place(jk)
    waiting_pair(settle_sets[WAITING], id, place[1], place[2], place[3])
  end
  return 1
end

-- Write the gathered set changes; wake idle workers for jobs that are waiting again.
local function settle_done()
  if #settle_left > 0 then
    call_chunked('ZREM', ACTIVE, settle_left)
    settle_left = {}
  end
  for key, list in pairs(settle_sets) do
    if #list > 0 then
      call_chunked('ZADD', key, list)
      if key == WAITING then wake(#list / 2) end
      settle_sets[key] = {}
    end
  end
end

-- Settlements packed in ARGV from `first`, six values each:
-- job id, token, outcome, payload (result or error JSON, '' for none),
-- retry_in_ms ('' for a final failure), error summary for the event (JSON string or null).
local function settle_all(now, first, count)
  local out = {}
  for i = 0, count - 1 do
    local a = first + i * 6
    out[i + 1] = settle_one(now, ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
                            ARGV[a + 4], ARGV[a + 5])
  end
  settle_done()
  return out
end
