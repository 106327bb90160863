-- list_jobs: one queue's jobs newest first, from a cursor, that pass a filter. At most
-- `budget` jobs are looked at per call; the caller continues from the returned position.
-- When the filter names states holding at most `budget` jobs, only those are read.
--
-- KEYS[1..13]  the queue's keys: job prefix, waiting, delayed, active, completed, failed,
--              cancelled, jobs, keys, tombstones, events, meta, wake (see keyspace.py)
-- ARGV[1]      events kept per queue (unused here; every queue script gets it)
-- ARGV[2]      start below this member of the jobs set ('' = from the newest)
-- ARGV[3]      at most this many jobs
-- ARGV[4]      at most this many jobs looked at in this call
-- ARGV[5]      states allowed, comma-separated ('' = any)
-- ARGV[6]      task name ('' = any)
-- ARGV[7]      search text as given ('' = none): the id itself passes at once
-- ARGV[8]      search text lower-cased: found in the id, task, arguments or errors
-- Returns {{member, job fields as HGETALL}..., last member looked at, 1 when exhausted}.

--- @include "clock"
--- @include "queue"

local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local states = nil
if ARGV[5] ~= '' then
  states = {}
  for s in string.gmatch(ARGV[5], '[^,]+') do states[s] = true end
end
local task, search, needle = ARGV[6], ARGV[7], ARGV[8]

local function contains(text)
  return text and string.find(string.lower(text), needle, 1, true) ~= nil
end

local function passes(id, jk)
  local f = redis.call('HMGET', jk, 'state', 'task')
  local ok = f[1] and (not states or states[f[1]]) and (task == '' or f[2] == task)
  if ok and search ~= '' and id ~= search then
    local t = redis.call('HMGET', jk, 'call', 'errors')
    ok = contains(id) or contains(f[2]) or contains(t[1]) or contains(t[2])
  end
  return ok
end

-- Few jobs in the wanted states (a dead-letter set among many completed jobs): read those
-- sets whole and sort them, instead of walking every job of the queue.
if states then
  local sets = {waiting = WAITING, delayed = DELAYED, active = ACTIVE, completed = COMPLETED,
                failed = FAILED, cancelled = CANCELLED,
                ['waiting-children'] = string.sub(JOB, 1, -5) .. 'waiting_children'}
  local total = 0
  for s in pairs(states) do total = total + redis.call('ZCARD', sets[s]) end
  if total <= budget then
    local picked = {}
    for s in pairs(states) do
      for _, m in ipairs(redis.call('ZRANGE', sets[s], 0, -1)) do
        local id = m
        if s == 'waiting' then id = member_id(m) end
        local jk = job_key(id)
        local f = redis.call('HMGET', jk, 'created_at', 'seq')
        if f[1] then
          local member = order_member(tonumber(f[1]), tonumber(f[2]), id)
          if (ARGV[2] == '' or member < ARGV[2]) and passes(id, jk) then
            picked[#picked + 1] = member
          end
        end
      end
    end
    table.sort(picked, function(x, y) return x > y end)
    local found = {}
    for i = 1, math.min(limit, #picked) do
      found[i] = {picked[i], redis.call('HGETALL', job_key(member_id(picked[i])))}
    end
    return {found, '', 1}
  end
end

local found, looked = {}, 0
local pos = ARGV[2]
while looked < budget do
  local chunk = math.min(200, budget - looked)
  local upper = '+'
  if pos ~= '' then upper = '(' .. pos end
  local members = redis.call('ZREVRANGEBYLEX', JOBS, upper, '-', 'LIMIT', 0, chunk)
  for _, m in ipairs(members) do
    looked = looked + 1
    pos = m
    local id = member_id(m)
    local jk = job_key(id)
    if passes(id, jk) then
      found[#found + 1] = {m, redis.call('HGETALL', jk)}
      if #found >= limit then return {found, pos, 0} end
    end
  end
  if #members < chunk then return {found, pos, 1} end
end
return {found, pos, 0}
