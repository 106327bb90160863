-- Choosing the jobs an operator action means (the JobFilter), for cancel, retry, promote
-- and remove. ARGV layout shared by those scripts:
--   ARGV[2]  'ids' (the ids follow from ARGV[10]) or 'scan' (walk the set of ARGV[6])
--   ARGV[3]  states allowed by the filter, comma-separated ('' = any)
--   ARGV[4]  task name ('' = any)
--   ARGV[5]  search text as given ('' = none): matches the id exactly
--   ARGV[6]  scan: the state whose set is walked
--   ARGV[7]  scan: how many entries at the head of that set to skip
--   ARGV[8]  scan: how many entries to look at in this call
--   ARGV[9]  search text lower-cased: found in the task, arguments or errors (ASCII
--            case-insensitive, as SQL LIKE)

local F_STATES = nil
if ARGV[3] ~= '' then
  F_STATES = {}
  for s in string.gmatch(ARGV[3], '[^,]+') do F_STATES[s] = true end
end
local F_TASK, F_SEARCH, F_SEARCH_LOWER = ARGV[4], ARGV[5], ARGV[9]

local function contains(text, needle)
  return text ~= false and text ~= nil
         and string.find(string.lower(text), needle, 1, true) ~= nil
end

-- The job's state if it exists and passes the filter, else nil.
local function selected(id, allowed)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'task')
  if not f[1] or not allowed[f[1]] then return nil end
  if F_STATES and not F_STATES[f[1]] then return nil end
  if F_TASK ~= '' and f[2] ~= F_TASK then return nil end
  if F_SEARCH ~= '' and id ~= F_SEARCH then
    local t = redis.call('HMGET', jk, 'call', 'errors')
    if not (contains(f[2], F_SEARCH_LOWER) or contains(t[1], F_SEARCH_LOWER)
            or contains(t[2], F_SEARCH_LOWER)) then
      return nil
    end
  end
  return f[1]
end

local SCAN_SETS = {waiting = WAITING, delayed = DELAYED, active = ACTIVE,
                   completed = COMPLETED, failed = FAILED, cancelled = CANCELLED,
                   ['waiting-children'] = string.sub(JOB, 1, -5) .. 'waiting_children'}

-- Apply `act(now, id, state)` (true when the job left its set) to every selected job.
-- Returns {changed ids, entries to skip next time, 1 when the set is exhausted}.
local function each_selected(now, allowed, act)
  local changed = {}
  if ARGV[2] == 'ids' then
    for i = 10, #ARGV do
      local state = selected(ARGV[i], allowed)
      if state and act(now, ARGV[i], state) ~= nil then changed[#changed + 1] = ARGV[i] end
    end
    return {changed, 0, 1}
  end
  local state, skip, budget = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
  local members = redis.call('ZRANGE', SCAN_SETS[state], skip, skip + budget - 1)
  for _, m in ipairs(members) do
    local id = m
    if state == 'waiting' then id = member_id(m) end
    local left = false
    if selected(id, allowed) then
      local result = act(now, id, state)
      if result ~= nil then
        changed[#changed + 1] = id
        left = result
      end
    end
    if not left then skip = skip + 1 end
  end
  return {changed, skip, #members < budget and 1 or 0}
end
