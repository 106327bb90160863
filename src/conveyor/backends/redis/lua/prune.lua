-- prune: apply retention to one queue, in bounded batches so Redis never stalls: finished
-- jobs past their age or beyond the newest `keep` of their state are removed (leaving
-- tombstones), events past their age are trimmed, old tombstones are dropped.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      batch: at most this many jobs per rule, and tombstones, per call
-- ARGV[3..4]   completed (and cancelled) jobs: max age in ms, max count
-- ARGV[5..6]   failed jobs: max age in ms, max count
-- ARGV[7]      events: max age in ms
-- ARGV[8]      tombstones: max age in ms
-- ARGV[9]      tombstones: max count (the oldest beyond it are dropped)
-- Returns {completed removed, cancelled removed, failed removed, events removed,
--          ids whose tombstones were dropped}.

--- @include "clock"
--- @include "queue"
--- @include "remove"

local now = now_ms()
local batch = tonumber(ARGV[2])

-- Flows: a flow is one unit; none of its jobs goes while any of them has not finished.
-- Each flow is looked at once per call (its jobs' states), whatever it holds.
local flow_open = {}
local UNFINISHED = {waiting = true, delayed = true, active = true,
                    ['waiting-children'] = true}
local function held_by_flow(id)
  local flow_id = redis.call('HGET', job_key(id), 'flow_id')
  if not flow_id then return false end
  if flow_open[flow_id] == nil then
    flow_open[flow_id] = false
    local members = redis.call('ZRANGE', string.sub(JOB, 1, -5) .. 'flowjobs:' .. flow_id,
                               0, -1)
    for _, member in ipairs(members) do
      if UNFINISHED[redis.call('HGET', job_key(member), 'state')] then
        flow_open[flow_id] = true
        break
      end
    end
  end
  return flow_open[flow_id]
end

local function prune_state(set, max_age, keep)
  local removed = 0
  local old = redis.call('ZRANGEBYSCORE', set, '-inf', '(' .. int(now - max_age),
                         'LIMIT', 0, batch)
  for _, id in ipairs(old) do
    if not held_by_flow(id) then
      removed = removed + remove_job(now, id)
      redis.call('ZREM', set, id)  -- even if its hash was gone
    end
  end
  local over = math.min(redis.call('ZCARD', set) - keep, batch)
  if over > 0 then
    for _, id in ipairs(redis.call('ZRANGE', set, 0, over - 1)) do
      if not held_by_flow(id) then
        removed = removed + remove_job(now, id)
        redis.call('ZREM', set, id)
      end
    end
  end
  return removed
end

local completed = prune_state(COMPLETED, tonumber(ARGV[3]), tonumber(ARGV[4]))
local cancelled = prune_state(CANCELLED, tonumber(ARGV[3]), tonumber(ARGV[4]))
local failed = prune_state(FAILED, tonumber(ARGV[5]), tonumber(ARGV[6]))
local events = redis.call('XTRIM', EVENTS, 'MINID', int((now - tonumber(ARGV[7])) * 1000))
local dropped = redis.call('ZRANGEBYSCORE', TOMBSTONES, '-inf',
                           '(' .. int(now - tonumber(ARGV[8])), 'LIMIT', 0, batch)
if #dropped > 0 then
  redis.call('ZREM', TOMBSTONES, unpack(dropped))
end
local over = math.min(redis.call('ZCARD', TOMBSTONES) - tonumber(ARGV[9]), batch - #dropped)
if over > 0 then
  local oldest = redis.call('ZRANGE', TOMBSTONES, 0, over - 1)
  redis.call('ZREM', TOMBSTONES, unpack(oldest))
  for _, id in ipairs(oldest) do dropped[#dropped + 1] = id end
end
return {completed, cancelled, failed, events, dropped}
