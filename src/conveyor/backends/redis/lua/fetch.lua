-- fetch: the worker's one call per batch. Records the outcomes of the previous batch,
-- makes due delayed jobs waiting, then leases up to `limit` waiting jobs (highest
-- priority, then earliest due, then first in) unless the queue is paused. Jobs past
-- their expiry that never started end cancelled first (includes/expiry.lua); keep_last
-- copies parked behind a job that is no longer active become waiting (includes/dedup.lua).
-- In 'peek' mode it claims nothing and returns the head of the waiting set instead, so
-- a worker of several queues can split its batch between them by priority.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (MAXLEN ~, see includes/events.lua)
-- ARGV[2]      'claim' or 'peek'
-- ARGV[3]      limit: how many jobs to claim (claim) or to show (peek)
-- ARGV[4]      worker id
-- ARGV[5]      lease length in ms
-- ARGV[6]      token prefix "<queue>:<random>."; a claim's token is the prefix .. job id
-- ARGV[7]      the call's slot, '0' or '1': a worker may have two calls in flight
-- ARGV[8]      number of settlements that follow
-- ARGV[9..]    settlements, six values each (see includes/settle.lua)
-- Returns {settled flags (1/0), claims: {id, attempt, token} per claim, claimed jobs:
--          their CLAIM_FIELDS values (includes/queue.lua), ms until the next delayed
--          job is due (-1: none), peek: {score, member, ...}, now}
-- Flow control (includes/flow.lua): in a queue that held a flow-controlled job (meta
-- field flow), jobs are chosen by flow_choose instead of popped from the waiting set; a
-- job taken through gates gets a token ending in '+'. A queue without limits pays one
-- meta field read.
-- Wake-ups: a queue left empty drops its stale tokens; a full claim that leaves work
-- behind passes a token on, so the next idle worker wakes without polling.
-- Lost replies: a worker's last claim in each call slot is kept for one lease in
-- "<meta key>:claim:<worker>:<slot>" (same Cluster slot); a call with the same token prefix (redis-py's retry after a dropped
-- connection, or the backend's next fetch after a failed one) gets those jobs again, in
-- either mode, instead of leasing more and leaving them to nobody until the lease expires.

--- @include "clock"
--- @include "queue"
--- @include "events"
--- @include "flow"
--- @include "settle"
--- @include "dedup"
--- @include "expiry"

local now = now_ms()
local mode, limit = ARGV[2], tonumber(ARGV[3])
local meta = redis.call('HMGET', META, 'paused', 'ev', 'flow')
events_prime(meta[2])
FLOW_ON = meta[3] == '1'
local settled = settle_all(now, 9, tonumber(ARGV[8]))
if redis.call('EXISTS', EXPIRING, DEDUP_PARKED) > 0 then  -- one call for queues with neither
  expire_due(now)  -- before anything is promoted or claimed: an expired job never starts
  dedup_unpark(now)  -- keep_last copies whose running job is done
end

-- due delayed jobs become waiting (at most 1000 per call; the rest on the next)
local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local moved = {}
  for _, id in ipairs(due) do
    local jk = job_key(id)
    local f = redis.call('HMGET', jk, 'priority', 'scheduled_at', 'seq', 'attempt')
    if f[1] then
      local eid = emit_state(now, id, 'waiting', num(f[4]))
      redis.call('HSET', jk, 'state', 'waiting', 'ev', eid)
      waiting_pair(moved, id, f[1], f[2], f[3])
    end
  end
  call_chunked('ZREM', DELAYED, due)
  call_chunked('ZADD', WAITING, moved)
end

local paused = meta[1] == '1'
local claims, claimed, peek = {}, {}, {}
local CLAIMED = META .. ':claim:' .. ARGV[4] .. ':' .. ARGV[7]
local last = redis.call('GET', CLAIMED)  -- "<token prefix>[id, ...]"
if last and string.sub(last, 1, #ARGV[6]) == ARGV[6] then
  local deadline = int(now + tonumber(ARGV[5]))
  for _, id in ipairs(cjson.decode(string.sub(last, #ARGV[6] + 1))) do
    local token = ARGV[6] .. id
    local jk = job_key(id)
    local held = redis.call('HMGET', jk, 'state', 'token')
    if held[1] == 'active' and (held[2] == token or held[2] == token .. '+') then
      token = held[2]
      local f = redis.call('HMGET', jk, unpack(CLAIM_FIELDS))
      redis.call('ZADD', ACTIVE, deadline, id)
      claims[#claims + 1] = {id, num(f[2]), token}
      claimed[#claimed + 1] = f
    end
  end
end
if paused then
  redis.call('DEL', WAKE)
elseif mode == 'peek' then
  if limit > 0 then
    if FLOW_ON then
      peek = flow_peek(now, limit)
    else
      peek = redis.call('ZRANGE', WAITING, 0, limit - 1, 'WITHSCORES')
    end
  end
elseif limit > #claims then
  local popped
  if FLOW_ON then
    popped = flow_choose(now, limit - #claims, ARGV[6])
  else
    popped = redis.call('ZPOPMIN', WAITING, limit - #claims)
  end
  local deadline = int(now + tonumber(ARGV[5]))
  local leases = {}
  local t = int(now)
  for i = 1, #popped, 2 do
    local id = member_id(popped[i])
    local jk = job_key(id)
    local f = redis.call('HMGET', jk, unpack(CLAIM_FIELDS))
    if f[1] == 'waiting' then
      local attempt = num(f[2]) + 1
      local attempt_text = f[2] and int(attempt) or '1'  -- a first attempt: no printf
      local token = ARGV[6] .. id
      if flow_taken[id] then token = token .. '+' end
      redis.call('HSET', jk, 'state', 'active', 'attempt', attempt_text, 'worker', ARGV[4],
                 'started_at', t, 'token', token,
                 'ev', emit_state(now, id, 'active', attempt_text))
      leases[#leases + 1] = id
      claims[#claims + 1] = {id, attempt, token}
      claimed[#claimed + 1] = f
    end
  end
  -- The new leases share one deadline, so the active set orders them by id. Added in
  -- descending id order, each lands before the last one added instead of after a scan
  -- of them all: the set is small, so a listpack kept in order.
  table.sort(leases)
  local pairs_desc = {}
  for i = #leases, 1, -1 do
    pairs_desc[#pairs_desc + 1] = deadline
    pairs_desc[#pairs_desc + 1] = leases[i]
  end
  call_chunked('ZADD', ACTIVE, pairs_desc)
end
if mode == 'claim' and #claims > 0 then
  local ids = {}
  for i, c in ipairs(claims) do ids[i] = c[1] end
  redis.call('SET', CLAIMED, ARGV[6] .. cjson.encode(ids), 'PX', ARGV[5])
end

if mode == 'claim' and not paused then
  if redis.call('ZCARD', WAITING) == 0 then
    redis.call('DEL', WAKE)
  elseif #claims >= limit then
    wake(1)
  end
end

local next_due = -1
if #claims < limit or mode == 'peek' then
  local head = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  if head[2] then next_due = math.max(tonumber(head[2]) - now, 0) end
  if FLOW_ON then next_due = flow_next_due(now, next_due) end
end
events_done()
return {settled, claims, claimed, next_due, peek, now}
