-- rescue: take back jobs of one queue whose lease expired (their worker stopped renewing
-- it). A job with a pending cancel ends cancelled; one with stalls left is waiting again
-- with the attempt uncharged; one past max_stalls ends failed. Each gets a "Stalled"
-- error entry and an event. A job claimed through flow gates gives its slots back.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      at most this many jobs per call
-- Returns the ids taken back.

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "flow"
--- @include "dependents"

local now = now_ms()
FLOW_ON = redis.call('HGET', META, 'flow') == '1'
local expired = redis.call('ZRANGEBYSCORE', ACTIVE, '-inf', '(' .. int(now), 'LIMIT', 0,
                           tonumber(ARGV[2]))
local woken = 0
for _, id in ipairs(expired) do
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'attempt', 'stalls', 'max_stalls', 'cancel_requested',
                       'worker', 'priority', 'scheduled_at', 'seq', 'errors', 'flow',
                       'children')
  redis.call('ZREM', ACTIVE, id)
  if f[10] then flow_release(jk) end
  if f[1] then
    local attempt, stalls, max_stalls = num(f[1]), num(f[2]), num(f[3])
    local cancel = f[4] == '1'
    local message = 'lease expired: worker ' .. (f[5] or '?') .. ' stopped renewing it'
    if stalls >= max_stalls and not cancel then
      message = message .. ' (max_stalls=' .. max_stalls .. ' reached)'
    end
    local text = cjson.encode(message)
    local entry = '{"attempt":' .. attempt .. ',"type":"Stalled","at":' .. int(now) ..
                  ',"traceback":null,"message":' .. text .. '}'
    local state
    if cancel then
      state = 'cancelled'
      redis.call('HSET', jk, 'finished_at', int(now))
      redis.call('ZADD', CANCELLED, now, id)
    elseif stalls < max_stalls then
      state = 'waiting'
      attempt = attempt - 1
      add_waiting(id, f[6], f[7], f[8])
      woken = woken + 1
    else
      state = 'failed'
      redis.call('HSET', jk, 'finished_at', int(now))
      redis.call('ZADD', FAILED, now, id)
    end
    redis.call('HSET', jk, 'state', state, 'attempt', attempt, 'stalls', stalls + 1,
               'errors', append_json(f[9], entry), 'token', '',
               'ev', emit_state(now, id, state, attempt, cjson.encode('Stalled: ' .. message)))
    if f[11] and state ~= 'waiting' then dependents_done(now, id, state, f[11]) end  -- flows
  end
end
if woken > 0 then wake(woken) end
events_done()
return expired
