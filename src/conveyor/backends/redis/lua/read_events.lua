-- read_events: one queue's events after an id, and the lowest id this queue can still
-- write (its floor), which the global merge uses as a watermark (see keyspace.py).
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      after: return events with an id above this
-- ARGV[3]      at most this many
-- Returns {entries as XRANGE gives them, floor}. When the read was cut at the limit, the
-- floor is the last id read + 1: nothing above it was looked at.

--- @include "clock"
--- @include "queue"

local limit = tonumber(ARGV[3])
local entries = redis.call('XRANGE', EVENTS, '(' .. ARGV[2] .. '-0', '+', 'COUNT', limit)
local floor
if #entries >= limit then
  local last = entries[#entries][1]
  floor = tonumber(string.sub(last, 1, string.find(last, '-', 1, true) - 1)) + 1
else
  local now = now_ms()
  local last = redis.call('HGET', META, 'ev')
  if last then
    floor = math.max(tonumber(last) + 1, now * 1000)
  else
    floor = (now + 1) * 1000
  end
end
return {entries, int(floor)}
