-- The clock and number formatting shared by every script.

-- Redis' clock in ms: the only clock conveyor uses for delays, leases and retention.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as exact decimal text (Lua 5.1 would print large numbers as 1.7e+15).
-- Formatting a number costs Redis a printf: pass numbers on as text where possible.
local function int(n)
  return string.format('%d', n)
end

-- int(now) for the script's `now`, formatted once per script.
local clock_at, clock_at_text = nil, nil
local function now_text(now)
  if now ~= clock_at then clock_at, clock_at_text = now, int(now) end
  return clock_at_text
end
