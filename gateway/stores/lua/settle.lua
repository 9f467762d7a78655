-- Correct an earlier gcra charge by a number of units, never refusing (docs/llm.md,
-- token limits): an LLM call's real usage against what was reserved before it.
-- lua/limit_gcra.lua (interval_of) is prepended to this text.
--   KEYS[1..n]  gcra states (TAT, µs)
--   ARGV[1]     delta: units to add (an over-run) or, negative, to give back (a refund)
--   ARGV[2i], ARGV[2i+1]  limit i's amount and window (microseconds)
-- Same arithmetic as gcra_settle in gateway/stores/strategies.py.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local delta = tonumber(ARGV[1])
for i = 1, #KEYS do
    local amount, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    local tat = tonumber(redis.call('GET', KEYS[i]))
    if not tat or tat < now then
        tat = now
    end
    local new = tat + delta * interval_of(amount, window)
    if new > now then
        redis.call('SET', KEYS[i], string.format('%d', new), 'PX',
                   math.ceil((new - now) / 1000))
    else
        redis.call('DEL', KEYS[i])
    end
end
return 0
