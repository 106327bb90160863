-- queue_info: one queue's numbers for dashboards and metrics: jobs per state, whether it
-- is paused, and when the oldest waiting job became due (the head of each priority band
-- of the waiting set; at most 100 bands are looked at).
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- Returns {waiting, delayed, active, completed, failed, cancelled, paused ('1', '0' or
--          nil when never set), oldest waiting due time in ms (-1: none),
--          waiting-children (flows)}.

--- @include "clock"
--- @include "queue"

-- flows: the queue's jobs waiting for their dependencies (includes/dependents.lua),
-- named from the job prefix ("P:{q:Q}:job:" -> "P:{q:Q}:waiting_children")
local BLOCKED = string.sub(JOB, 1, -5) .. 'waiting_children'

local oldest = -1
local head = redis.call('ZRANGE', WAITING, 0, 0, 'WITHSCORES')
local bands = 0
while head[1] and bands < 100 do
  local due = tonumber(string.sub(head[1], 1, 13))
  if oldest < 0 or due < oldest then oldest = due end
  head = redis.call('ZRANGE', WAITING, '(' .. head[2], '+inf', 'BYSCORE', 'LIMIT', 0, 1,
                    'WITHSCORES')
  bands = bands + 1
end
return {redis.call('ZCARD', WAITING), redis.call('ZCARD', DELAYED),
        redis.call('ZCARD', ACTIVE), redis.call('ZCARD', COMPLETED),
        redis.call('ZCARD', FAILED), redis.call('ZCARD', CANCELLED),
        redis.call('HGET', META, 'paused'), oldest, redis.call('ZCARD', BLOCKED)}
