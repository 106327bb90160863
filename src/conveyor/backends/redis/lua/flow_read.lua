-- flow_read: the limiters stored in one queue with their use, for limits()
-- (includes/flow.lua). Writes only to forget window logs that expired and pauses that
-- ended.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- Returns {declared: flat limiter, JSON; overrides: flat limiter, JSON; slots in use:
--          flat "<limiter>\n<key>", count; pauses in force: flat "<limiter>\n<key>",
--          until; starts in the current window: flat "<limiter>\n<key>", count; jobs held
--          back: flat "<limiter>\n<key>", waiting jobs of the groups the claim found
--          blocked or parked, under each gate that holds them now (its concurrency key
--          for a full slot, its rate key for a full window or a pause)}

--- @include "clock"
--- @include "queue"
--- @include "flow"

local now = now_ms()
local limits = flow_limits()
local pauses = {}
local flat = redis.call('HGETALL', F_PAUSES)
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) > now then
    pauses[#pauses + 1] = flat[i]
    pauses[#pauses + 1] = flat[i + 1]
  else
    redis.call('HDEL', F_PAUSES, flat[i])
  end
end
local starts = {}
for _, pk in ipairs(redis.call('SMEMBERS', F_WINDOWS)) do
  if redis.call('EXISTS', FLOW .. 'w:' .. pk) == 0 then redis.call('SREM', F_WINDOWS, pk) end
  local lim = string.sub(pk, 1, string.find(pk, '\n', 1, true) - 1)
  local limit = limits[lim] or {}
  if limit[1] then
    local count = redis.call('ZCOUNT', FLOW .. 'w:' .. pk, '(' .. (now - limit[2]), '+inf')
    if count > 0 then
      starts[#starts + 1] = pk
      starts[#starts + 1] = count
    end
  end
end
local held = {}
local function count_group(grp)
  local waiting = redis.call('ZCARD', FLOW .. 'g:' .. grp)
  local _, _, reasons = flow_verdict(cjson.decode(grp), limits, now, false, true)
  local seen = {}
  for _, r in ipairs(reasons) do
    local hk = r.limiter .. '\n' .. r.key
    if not seen[hk] then
      seen[hk] = true
      held[hk] = (held[hk] or 0) + waiting
    end
  end
end
for _, grp in ipairs(redis.call('ZRANGEBYSCORE', F_BLOCKED, '(' .. now, '+inf')) do
  count_group(grp)
end
for _, m in ipairs(redis.call('ZRANGE', F_PARKED, 0, -1)) do
  count_group(string.sub(m, string.find(m, '\n', string.find(m, '\n', 1, true) + 1, true) + 1))
end
local blocked = {}
for hk, n in pairs(held) do
  blocked[#blocked + 1] = hk
  blocked[#blocked + 1] = n
end
return {redis.call('HGETALL', FLOW .. 'limits'), redis.call('HGETALL', FLOW .. 'overrides'),
        redis.call('HGETALL', F_SLOTS), pauses, starts, blocked}
