-- schedule_save: create a schedule (ARGV[1] = '0': only if the name is free here) or replace
-- its definition and next run (ARGV[1] = the version the change was made from). Counters,
-- the last run and the buffered tick are kept (a paused schedule drops its buffered tick).
-- Every change bumps the version, so a scheduler's firing planned before it is refused.
--
-- KEYS[1]  the schedule's hash (in its queue's slot; see keyspace.py)
-- ARGV[1]  expected version ('0' to create)
-- ARGV[2..9] name, queue, task, definition JSON, overlap, paused ('1'/'0'), origin,
--            next run in ms ('' = none: the schedule has ended)
-- Returns 1 when written, 0 when the name is taken or the version moved on.

--- @include "clock"

local now = int(now_ms())
local version = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '0' then
  if version then return 0 end
  redis.call('HSET', KEYS[1], 'created_at', now, 'enqueued', 0, 'skipped_overlap', 0,
             'skipped_misfire', 0, 'expired', 0)
  version = '0'
elseif version ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'queue', ARGV[3], 'task', ARGV[4],
           'definition', ARGV[5], 'overlap', ARGV[6], 'paused', ARGV[7], 'origin', ARGV[8],
           'next_run_at', ARGV[9], 'version', tonumber(version) + 1, 'updated_at', now)
if ARGV[7] == '1' then redis.call('HDEL', KEYS[1], 'pending_tick_at') end
return 1
