-- flow_read: the limiters stored in one queue with their use, for limits()
-- (includes/flow.lua). Reads only.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- Returns {declared: flat limiter, JSON; overrides: flat limiter, JSON; slots in use:
--          flat "<limiter>\n<key>", count; pauses in force: flat "<limiter>\n<key>",
--          until; starts in the current window: flat "<limiter>\n<key>", count; blocked
--          groups: flat grp, waiting jobs (blocked until a time or parked on a slot)}

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
  end
end
local starts = {}
for _, pk in ipairs(redis.call('SMEMBERS', F_WINDOWS)) do
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
local blocked = {}
local function count_group(grp)
  blocked[#blocked + 1] = grp
  blocked[#blocked + 1] = redis.call('ZCARD', FLOW .. 'g:' .. grp)
end
for _, grp in ipairs(redis.call('ZRANGEBYSCORE', F_BLOCKED, '(' .. now, '+inf')) do
  count_group(grp)
end
for _, m in ipairs(redis.call('ZRANGE', F_PARKED, 0, -1)) do
  count_group(string.sub(m, string.find(m, '\n', string.find(m, '\n', 1, true) + 1, true) + 1))
end
return {redis.call('HGETALL', FLOW .. 'limits'), redis.call('HGETALL', FLOW .. 'overrides'),
        redis.call('HGETALL', F_SLOTS), pauses, starts, blocked}
