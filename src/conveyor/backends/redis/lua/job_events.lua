-- job_events: the events of one job after an id. A job's events lie between its birth
-- (created_at * 1000, ids are tied to time) and its latest event, so only that stretch
-- of the queue's stream is scanned, at most `budget` entries per call.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      job id
-- ARGV[3]      after: only events with an id above this
-- ARGV[4]      at most this many events
-- ARGV[5]      at most this many stream entries looked at in this call
-- Returns {matching entries, the last id looked at, 1 when the stretch is exhausted}.

--- @include "clock"
--- @include "queue"

local id, limit, budget = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5])
local f = redis.call('HMGET', job_key(id), 'created_at', 'ev')
local from = ARGV[3]
if f[1] then
  local birth = tonumber(f[1]) * 1000 - 1
  if birth > tonumber(from) then from = int(birth) end
end
local to = '+'
if f[2] then to = f[2] .. '-0' end
local found, looked = {}, 0
local pos = from
while looked < budget do
  local chunk = math.min(500, budget - looked)
  local entries = redis.call('XRANGE', EVENTS, '(' .. pos .. '-0', to, 'COUNT', chunk)
  for _, e in ipairs(entries) do
    looked = looked + 1
    local eid = e[1]
    pos = string.sub(eid, 1, string.find(eid, '-', 1, true) - 1)
    if e[2][2] == id then
      found[#found + 1] = e
      if #found >= limit then return {found, pos, 0} end
    end
  end
  if #entries < chunk then return {found, pos, 1} end
end
return {found, pos, 0}
