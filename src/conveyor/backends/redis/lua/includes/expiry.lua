-- Expiry: a job not started by its expiry time ends cancelled with reason "expired".
-- "<meta key>:expiring" (zset, score expires_at, member id; same Cluster slot as the
-- queue) holds jobs stored with an expiry; fetch calls expire_due before it promotes or
-- claims anything, so an expired job never starts. Entries of jobs that started or
-- finished meanwhile are dropped when their time comes. Needs "clock", "queue", "events".

local EXPIRING = META .. ':expiring'
local EXPIRED_ERROR = '{"type":"JobExpired","message":"expired: not started by its '
                      .. 'expiry time","reason":"expired"'
local EXPIRED_SUMMARY = '"JobExpired: expired: not started by its expiry time"'

local function expire_one(now, id, expires_at)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'attempt', 'stalls', 'priority',
                       'scheduled_at', 'seq', 'errors')
  if (f[1] ~= 'waiting' and f[1] ~= 'delayed') or num(f[2]) + num(f[3]) > 0 then
    return
  end
  if f[1] == 'waiting' then
    remove_waiting(id, f[4], f[5], f[6])
  else
    redis.call('ZREM', DELAYED, id)
  end
  local t = now_text(now)
  local entry = EXPIRED_ERROR .. ',"expires_at":' .. expires_at .. ',"at":' .. t .. '}'
  redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', t,
             'errors', append_json(f[7], entry),
             'ev', emit_state(now, id, 'cancelled', '0', EXPIRED_SUMMARY))
  redis.call('ZADD', CANCELLED, t, id)
end

-- Cancel every job of the queue past its expiry that has not started (in rounds of 1000).
local function expire_due(now)
  repeat
    local due = redis.call('ZRANGEBYSCORE', EXPIRING, '-inf', now, 'WITHSCORES', 'LIMIT',
                           0, 1000)
    local ids = {}
    for i = 1, #due, 2 do
      expire_one(now, due[i], due[i + 1])
      ids[#ids + 1] = due[i]
    end
    if #ids > 0 then call_chunked('ZREM', EXPIRING, ids) end
  until #ids < 1000
end
