-- Flow control (conveyor/flow) beside one queue's jobs: its stored limits, the gates a
-- job passes at its claim, filing waiting jobs in their flow group, and giving a job's
-- concurrency slots back. Needs "clock" and "queue". The algorithm is the SQLite one
-- (backends/sqlite/flow.py); the keys (keyspace.py, all under the queue's hash tag):
--
--   F..'limits'     hash  limiter -> declared limit JSON {"rate": [n, ms]|null,
--                         "concurrency": n|null}; F..'overrides' the same set at runtime
--   F..'g:'..grp    zset  a flow group's waiting jobs, score and member as in the waiting
--                         set (the group '' holds the jobs without limits of such a queue)
--   F..'turns'      hash  grp -> its turn: every group that has waiting jobs
--   F..'ready'      zset  groups the claim looks at: score -priority of the group's best
--                         job, member "<turn:15>|<grp>" (equal priorities: older turn first)
--   F..'blocked'    zset  groups blocked until a time (score) by a full window or a pause
--   F..'parked'     zset  "<limiter>\n<key>\n<grp>", score 0: groups parked on a full slot
--   F..'slots'      hash  "<limiter>\n<key>" -> jobs active through it
--   F..'pauses'     hash  "<limiter>\n<key>" -> paused until (ms; RateLimited)
--   F..'w:<limiter>\n<key>'  zset  the sliding-window log of starts: score the start time,
--                         member the lease token; expires one window after the last start
--   F..'windows'    set   "<limiter>\n<key>" of every window log (for limits())
-- META fields: flow = '1' once the queue held a flow-controlled job (then every waiting
-- job is also filed in a group and the claim goes through flow_choose), turn = last turn.
--
-- A job with gates is claimed with a lease token ending in '+', so its settle knows to
-- give slots back without reading the job (flow_release).

local FLOW = string.sub(META, 1, -5) .. 'flow:'  -- "<prefix>:{q:Q}:flow:"
local F_READY, F_TURNS, F_BLOCKED, F_PARKED = FLOW .. 'ready', FLOW .. 'turns',
                                             FLOW .. 'blocked', FLOW .. 'parked'
local F_SLOTS, F_PAUSES, F_WINDOWS = FLOW .. 'slots', FLOW .. 'pauses', FLOW .. 'windows'
local FLOW_LOOK_MAX = 1000  -- groups and stale entries one claim looks at, at most
local flow_taken = {}  -- job id -> true: claimed through gates (its token gets '+')

local function flow_turn_member(turn, grp)
  return string.format('%015d|', turn) .. grp
end

-- The group enters the line to be looked at with its best job's priority, or is
-- forgotten when it has no waiting job left.
local function flow_ready(grp)
  local head = redis.call('ZRANGE', FLOW .. 'g:' .. grp, 0, 0, 'WITHSCORES')
  local turn = redis.call('HGET', F_TURNS, grp)
  if #head == 0 then
    redis.call('HDEL', F_TURNS, grp)
    if turn then redis.call('ZREM', F_READY, flow_turn_member(tonumber(turn), grp)) end
    return
  end
  if not turn then
    turn = grp == '' and 0 or redis.call('HINCRBY', META, 'turn', 1)
    redis.call('HSET', F_TURNS, grp, turn)
  end
  redis.call('ZADD', F_READY, head[2], flow_turn_member(tonumber(turn), grp))
end

-- File a job just put in the waiting set (score, member) in its group (see queue.lua).
flow_file = function(id, score, member)
  local grp = redis.call('HGET', job_key(id), 'flow') or ''
  redis.call('ZADD', FLOW .. 'g:' .. grp, score, member)
  local turn = redis.call('HGET', F_TURNS, grp)
  if not turn then
    flow_ready(grp)
    return
  end
  local rm = flow_turn_member(tonumber(turn), grp)
  local cur = redis.call('ZSCORE', F_READY, rm)
  if cur and tonumber(score) < tonumber(cur) then  -- in line, and now with a better job
    redis.call('ZADD', F_READY, score, rm)
  end
end

-- The queue holds its first flow-controlled job: from now on every waiting job is filed,
-- starting with those waiting already (all without limits).
local function flow_turn_on()
  if FLOW_ON then return end
  FLOW_ON = true
  redis.call('HSET', META, 'flow', '1')
  local waiting = redis.call('ZRANGE', WAITING, 0, -1, 'WITHSCORES')
  if #waiting > 0 then
    local swapped = {}
    for i = 1, #waiting, 2 do
      swapped[i], swapped[i + 1] = waiting[i + 1], waiting[i]
    end
    call_chunked('ZADD', FLOW .. 'g:', swapped)
    flow_ready('')
  end
end

-- The limits in force: limiter -> {rate count or nil, window ms, concurrency or nil}.
local function flow_limits()
  local out = {}
  for _, source in ipairs({FLOW .. 'limits', FLOW .. 'overrides'}) do
    local flat = redis.call('HGETALL', source)
    for i = 1, #flat, 2 do
      local spec = cjson.decode(flat[i + 1])
      local lim = {}
      if type(spec.rate) == 'table' then lim[1], lim[2] = spec.rate[1], spec.rate[2] end
      if type(spec.concurrency) == 'number' then lim[3] = spec.concurrency end
      out[flat[i]] = lim
    end
  end
  return out
end

-- Why a group with these gates may not start a job now: (until, slot, reasons). until:
-- blocked by time (a full window, a pause); slot: the first full concurrency slot.
-- `claiming` trims the window logs (a read for limits() or why leaves them).
local function flow_verdict(gates, limits, now, claiming, explain)
  local till, slot, reasons = nil, nil, {}
  for _, gate in ipairs(gates) do
    local lim, rkey, ckey = gate[1], gate[2], gate[3]
    local limit = limits[lim] or {}
    local pk = lim .. '\n' .. rkey
    local paused = tonumber(redis.call('HGET', F_PAUSES, pk))
    if paused and paused > now then
      till = math.max(till or 0, paused)
      if explain then
        reasons[#reasons + 1] = {reason = 'paused', limiter = lim, key = rkey, ['until'] = paused}
      end
    elseif paused and claiming then
      redis.call('HDEL', F_PAUSES, pk)
    end
    if limit[1] then
      local w, since = FLOW .. 'w:' .. pk, now - limit[2]
      if claiming then redis.call('ZREMRANGEBYSCORE', w, '-inf', since) end
      local count = redis.call('ZCOUNT', w, '(' .. since, '+inf')
      if count >= limit[1] then
        -- the start whose leaving the window lets one more in
        local at = redis.call('ZRANGEBYSCORE', w, '(' .. since, '+inf', 'WITHSCORES',
                              'LIMIT', count - limit[1], 1)
        local free_at = tonumber(at[2]) + limit[2]
        till = math.max(till or 0, free_at)
        if explain then
          reasons[#reasons + 1] = {reason = 'rate_limited', limiter = lim, key = rkey,
                                   ['until'] = free_at, rate = {limit[1], limit[2]}}
        end
      end
    end
    if limit[3] then
      local used = tonumber(redis.call('HGET', F_SLOTS, lim .. '\n' .. ckey)) or 0
      if used >= limit[3] then
        slot = slot or (lim .. '\n' .. ckey)
        if explain then
          reasons[#reasons + 1] = {reason = 'concurrency_full', limiter = lim, key = ckey,
                                   used = used, limit = limit[3]}
        end
      end
    end
  end
  return till, slot, reasons
end

-- A job starts through its gates: a start in each rated window, a slot in each gate
-- (counted for every gate, so a cap set later at runtime sees the true use).
local function flow_take(gates, limits, now, token)
  for _, gate in ipairs(gates) do
    local lim, rkey, ckey = gate[1], gate[2], gate[3]
    local limit = limits[lim] or {}
    if limit[1] then
      local pk = lim .. '\n' .. rkey
      local w = FLOW .. 'w:' .. pk
      redis.call('ZADD', w, now, token)
      redis.call('PEXPIRE', w, limit[2])
      redis.call('SADD', F_WINDOWS, pk)
    end
    redis.call('HINCRBY', F_SLOTS, lim .. '\n' .. ckey, 1)
  end
end

-- Time-blocked groups whose time came are looked at again.
local function flow_unblock(now)
  local due = redis.call('ZRANGEBYSCORE', F_BLOCKED, '-inf', now, 'LIMIT', 0, 1000)
  for _, grp in ipairs(due) do
    redis.call('ZREM', F_BLOCKED, grp)
    flow_ready(grp)
  end
end

-- Forget up to two window logs that expired and two pauses that ended, picked at random,
-- so keys seen once (a tenant of one day) do not pile up in these indexes.
local function flow_tidy(now)
  for _, pk in ipairs(redis.call('SRANDMEMBER', F_WINDOWS, 2)) do
    if redis.call('EXISTS', FLOW .. 'w:' .. pk) == 0 then redis.call('SREM', F_WINDOWS, pk) end
  end
  local pauses = redis.call('HRANDFIELD', F_PAUSES, 2, 'WITHVALUES')
  for i = 1, #pauses, 2 do
    if tonumber(pauses[i + 1]) <= now then redis.call('HDEL', F_PAUSES, pauses[i]) end
  end
end

-- A group whose gates refuse leaves the line: parked on the full slot, else blocked until
-- the time its window or pause lets it start.
local function flow_leave_line(rm, grp, till, slot)
  redis.call('ZREM', F_READY, rm)
  if slot then
    redis.call('ZADD', F_PARKED, 0, slot .. '\n' .. grp)
  else
    redis.call('ZADD', F_BLOCKED, till, grp)
  end
end

-- Choose up to n waiting jobs that may start now, taking their gates: the best ready
-- group (priority, then turn) gives its best job and goes to the back of the line; a
-- group whose gates refuse leaves the line (blocked until a time, or parked on the full
-- slot until a job releases it), so jobs of other groups behind it start. Returns the
-- jobs as ZPOPMIN would (member, score, ...), gone from the waiting set already.
local function flow_choose(now, n, token_prefix)
  flow_unblock(now)
  flow_tidy(now)
  local limits = flow_limits()
  local out, looked = {}, 0
  while #out < 2 * n and looked < n + FLOW_LOOK_MAX do
    local top = redis.call('ZRANGE', F_READY, 0, 0)
    if #top == 0 then break end
    looked = looked + 1
    local rm = top[1]
    local grp = string.sub(rm, 17)
    local gates = grp ~= '' and cjson.decode(grp) or {}
    local till, slot = flow_verdict(gates, limits, now, true, false)
    if till or slot then
      flow_leave_line(rm, grp, till, slot)
    else
      local head = redis.call('ZPOPMIN', FLOW .. 'g:' .. grp, 1)
      if #head == 0 then
        flow_ready(grp)  -- forgotten
      elseif redis.call('ZREM', WAITING, head[1]) == 0 then
        flow_ready(grp)  -- a stale entry (the job was cancelled, removed...): next head
      else
        local id = member_id(head[1])
        if grp ~= '' then
          flow_taken[id] = true
          flow_take(gates, limits, now, token_prefix .. id .. '+')
          redis.call('ZREM', F_READY, rm)
          redis.call('HDEL', F_TURNS, grp)  -- a new turn, after every group known now
        end
        out[#out + 1] = head[1]
        out[#out + 1] = head[2]
        flow_ready(grp)
      end
    end
  end
  return out
end

-- Peek (a worker of several queues splitting its batch): the heads of the groups that
-- may start now, at most one per group but for the jobs without limits. Groups found
-- blocked leave the line as in a claim, so a peek alone keeps the line current.
local function flow_peek(now, n)
  flow_unblock(now)
  local limits = flow_limits()
  local out, looked, at = {}, 0, 0
  while #out < 2 * n and looked < FLOW_LOOK_MAX do
    local line = redis.call('ZRANGE', F_READY, at, at)
    if #line == 0 then break end
    looked = looked + 1
    local grp = string.sub(line[1], 17)
    local till, slot = nil, nil
    if grp ~= '' then till, slot = flow_verdict(cjson.decode(grp), limits, now, true, false) end
    if till or slot then
      flow_leave_line(line[1], grp, till, slot)
    else
      at = at + 1
      local take = grp == '' and n - #out / 2 or 1
      local heads = redis.call('ZRANGE', FLOW .. 'g:' .. grp, 0, take - 1, 'WITHSCORES')
      for k = 1, #heads do out[#out + 1] = heads[k] end
    end
  end
  return out
end

-- When the earliest blocked group may start again, as ms from now (-1: none), folded
-- into `next_due` (the same, for delayed jobs).
local function flow_next_due(now, next_due)
  local head = redis.call('ZRANGE', F_BLOCKED, 0, 0, 'WITHSCORES')
  if head[2] then
    local due = math.max(tonumber(head[2]) - now, 0)
    if next_due < 0 or due < next_due then return due end
  end
  return next_due
end

-- A job with gates leaves `active` (settle, rescue): its slots come back and the groups
-- parked on them are looked at again.
local function flow_release(jk)
  local grp = redis.call('HGET', jk, 'flow')
  if not grp then return end
  local unparked = 0
  for _, gate in ipairs(cjson.decode(grp)) do
    local sk = gate[1] .. '\n' .. gate[3]
    if redis.call('HINCRBY', F_SLOTS, sk, -1) <= 0 then redis.call('HDEL', F_SLOTS, sk) end
    local parked = redis.call('ZRANGEBYLEX', F_PARKED, '[' .. sk .. '\n', '(' .. sk .. '\11')
    for _, m in ipairs(parked) do
      redis.call('ZREM', F_PARKED, m)
      flow_ready(string.sub(m, #sk + 2))
      unparked = unparked + 1
    end
  end
  if unparked > 0 then wake(1) end
end

-- A task raised RateLimited: pause the job's gates (or only those of `limiter`) until
-- `till` for every worker (a later pause wins).
local function flow_pause(jk, limiter, till)
  local grp = redis.call('HGET', jk, 'flow')
  if not grp then return end
  local gates, named = cjson.decode(grp), {}
  for _, gate in ipairs(gates) do
    if gate[1] == limiter then named[#named + 1] = gate end
  end
  if #named == 0 then named = gates end
  for _, gate in ipairs(named) do
    local pk = gate[1] .. '\n' .. gate[2]
    local cur = tonumber(redis.call('HGET', F_PAUSES, pk))
    if not cur or cur < till then redis.call('HSET', F_PAUSES, pk, int(till)) end
  end
end
