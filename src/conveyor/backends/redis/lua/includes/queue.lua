-- The keys of one queue (every queue script gets them as KEYS, in this order; see
-- keyspace.py) and small helpers shared by every queue script. Needs "clock".
local JOB, WAITING, DELAYED, ACTIVE, COMPLETED, FAILED, CANCELLED, JOBS, DEDUP,
      TOMBSTONES, EVENTS, META, WAKE = unpack(KEYS, 1, 13)
local FINISHED = {completed = COMPLETED, failed = FAILED, cancelled = CANCELLED}
local WAKE_CAP = 16  -- wake-up tokens kept for idle workers; keep in step with keyspace.py

-- Flow control (includes/flow.lua): true in a queue that held a flow-controlled job; then
-- every job put in the waiting set is also filed in its flow group (flow_file). A script
-- that makes jobs waiting includes "flow" and sets FLOW_ON from the queue's meta.
local FLOW_ON, flow_file = false, nil

local function job_key(id)
  return JOB .. id
end

-- Counters a new job does not store yet (attempt, stalls, log_count): absent means 0.
local function num(value)
  return tonumber(value) or 0
end

-- What a claim reads of a job, in this order (codec.CLAIM_FIELDS must match): its state
-- and attempt before the claim, then what the worker cannot know already (the rest is
-- its queue, its own id, the new lease, or empty at a claim).
local CLAIM_FIELDS = {'state', 'attempt', 'task', 'call', 'opts', 'priority', 'key',
                      'max_stalls', 'stalls', 'progress', 'errors', 'logs', 'created_at',
                      'scheduled_at'}

-- "<time:13><seq:12>:<id>": members of the waiting and jobs sets; equal scores sort by it.
local function order_member(t, seq, id)
  return string.format('%013d%012d:', t, seq) .. id
end

-- The same from a time and a seq already formatted (int(), neither negative): string
-- padding instead of a printf per number.
local ORDER_ZEROS = '0000000000000'
local function order_member_text(t_text, seq_text, id)
  if #t_text < 13 then t_text = string.sub(ORDER_ZEROS, #t_text + 1) .. t_text end
  return t_text .. string.sub(ORDER_ZEROS, #seq_text + 2) .. seq_text .. ':' .. id
end

local function member_id(member)
  return string.sub(member, 27)
end

-- A variadic command over a long argument list, in chunks Lua's unpack can take.
local function call_chunked(command, key, args)
  for i = 1, #args, 1000 do
    redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
  end
end

-- Put a job in the waiting set at its place (priority, due time, enqueue order).
local function add_waiting(id, priority, scheduled_at, seq)
  local member = order_member(tonumber(scheduled_at), tonumber(seq), id)
  redis.call('ZADD', WAITING, -tonumber(priority), member)
  if FLOW_ON then flow_file(id, -tonumber(priority), member) end
end

-- The same for many jobs: collect score/member pairs, then one ZADD.
local function waiting_pair(pairs, id, priority, scheduled_at, seq)
  pairs[#pairs + 1] = -tonumber(priority)
  pairs[#pairs + 1] = order_member(tonumber(scheduled_at), tonumber(seq), id)
  if FLOW_ON then flow_file(id, pairs[#pairs - 1], pairs[#pairs]) end
end

-- The score of a new job (priority as text) in the waiting set: -priority as text, as
-- Redis would print -tonumber(priority), which costs it a printf.
local function waiting_score(priority)
  if string.byte(priority) == 45 then return string.sub(priority, 2) end  -- '-'
  return '-' .. priority
end

local function remove_waiting(id, priority, scheduled_at, seq)
  redis.call('ZREM', WAITING, order_member(tonumber(scheduled_at), tonumber(seq), id))
end

-- Leave up to n wake-up tokens for workers blocked in BLPOP on this queue.
local function wake(n)
  local add = math.min(n, WAKE_CAP - redis.call('LLEN', WAKE))
  if add > 0 then
    local tokens = {}
    for i = 1, add do tokens[i] = '1' end
    redis.call('LPUSH', WAKE, unpack(tokens))
  end
end

-- Append one JSON value to a JSON array kept as text.
local function append_json(list, entry)
  if not list or list == '[]' then
    return '[' .. entry .. ']'
  end
  return string.sub(list, 1, -2) .. ',' .. entry .. ']'
end

-- Add "at" to a JSON object kept as text (the client never sends its own "at").
local function stamp(entry, now)
  if entry == '{}' then
    return '{"at":' .. int(now) .. '}'
  end
  return string.sub(entry, 1, -2) .. ',"at":' .. int(now) .. '}'
end
