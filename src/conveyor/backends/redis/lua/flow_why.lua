-- flow_why: why one waiting job's flow gates keep it from starting now (reads only;
-- includes/flow.lua).
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      the job id
-- Returns a JSON array of reasons: {reason 'paused' | 'rate_limited' (limiter, key,
-- until; rate as [count, window ms]) | 'concurrency_full' (limiter, key, used, limit)};
-- '[]' when the job is not waiting or has no gates.

--- @include "clock"
--- @include "queue"
--- @include "flow"

local f = redis.call('HMGET', job_key(ARGV[2]), 'state', 'flow')
if f[1] ~= 'waiting' or not f[2] then return '[]' end
local _, _, reasons = flow_verdict(cjson.decode(f[2]), flow_limits(), now_ms(), false, true)
if #reasons == 0 then return '[]' end
return cjson.encode(reasons)
