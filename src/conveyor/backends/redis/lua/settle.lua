-- settle: record the outcomes of running attempts of one queue (complete, fail with or
-- without a retry, cancelled, release), each refused unless its lease token still holds.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      number of settlements that follow
-- ARGV[3..]    settlements, six values each (see includes/settle.lua)
-- Returns one flag per settlement: 1 recorded, 0 the lease was no longer held.

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "flow"
--- @include "settle"

FLOW_ON = redis.call('HGET', META, 'flow') == '1'
local settled = settle_all(now_ms(), 3, tonumber(ARGV[2]))
events_done()
return settled
