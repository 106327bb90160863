-- Recording events: one stream entry per state change, progress report or log line.
-- Ids are "<n>-0" with n = max(last + 1, now_ms * 1000): they only grow, they say when,
-- and a queue's first event starts one millisecond ahead (see the global merge in
-- keyspace.py). ARGV[1] of every queue script caps the stream (MAXLEN ~): the first
-- event of a script trims with its XADD, and a script that emits more trims once at the
-- end (one XTRIM instead of a trim per XADD; trimming whole nodes from the head, it
-- leaves the same stream).
-- A script that emits must call events_done() before it returns: it saves the last id.
-- A script that reads the queue's meta hash anyway passes its "ev" to events_prime().
local events_last = false
local events_count = 0
local events_primed, events_prime_value = false, nil

local function events_prime(last)
  events_primed, events_prime_value = true, last
end

local function emit(now, id, kind, data)
  if not events_last then
    local last = events_prime_value
    if not events_primed then last = redis.call('HGET', META, 'ev') end
    if last then
      events_last = math.max(tonumber(last), now * 1000 - 1)
    else
      events_last = (now + 1) * 1000 - 1
    end
  end
  events_last = events_last + 1
  local eid = int(events_last)
  events_count = events_count + 1
  if events_count == 1 then
    redis.call('XADD', EVENTS, 'MAXLEN', '~', ARGV[1], eid .. '-0',
               'j', id, 'k', kind, 'd', data, 'a', now_text(now))
  else
    redis.call('XADD', EVENTS, eid .. '-0', 'j', id, 'k', kind, 'd', data, 'a', now_text(now))
  end
  return eid
end

-- A state change; returns the event id, which the caller stores as the job's "ev" (its
-- latest event, the upper end of a scan for one job's events). `attempt` is best passed
-- as text: formatting a Lua number costs Redis a printf.
local events_attempt_data = {}  -- attempt text -> its event data, built once per script

local function emit_state(now, id, state, attempt, error_summary)
  local data
  if error_summary then
    data = '{"attempt":' .. attempt .. ',"error":' .. error_summary .. '}'
  else
    data = events_attempt_data[attempt]
    if not data then
      data = '{"attempt":' .. attempt .. '}'
      events_attempt_data[attempt] = data
    end
  end
  return emit(now, id, state, data)
end

-- Save the last id, with any other field/value pairs of the meta hash (one HSET).
local function events_done(...)
  if events_count > 1 then redis.call('XTRIM', EVENTS, 'MAXLEN', '~', ARGV[1]) end
  if events_last then
    redis.call('HSET', META, 'ev', int(events_last), ...)
  elseif select('#', ...) > 0 then
    redis.call('HSET', META, ...)
  end
end
