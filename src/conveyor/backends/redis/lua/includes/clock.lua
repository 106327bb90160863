-- The clock and number formatting shared by every script.

-- Redis' clock in ms: the only clock conveyor uses for delays, leases and retention.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as exact decimal text (Lua 5.1 would print large numbers as 1.7e+15).
local function int(n)
  return string.format('%d', n)
end
