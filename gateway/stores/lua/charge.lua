-- Charge one request against every limit that applies and take an in-flight slot: all
-- or nothing, in one round trip (docs/rate-limits.md). The strategy's own
-- `decide` and `commit` (lua/limit_<strategy>.lua) are prepended to this text.
--   KEYS[1..n]  the limits' state;  KEYS[n+1]  the tenant's in-flight slots, when
--               ARGV[2n+3] is given: a sorted set of slot ids scored by expiry (ms)
--   ARGV[1]     cost: units charged to each limit;  ARGV[2]  n, the number of limits
--   ARGV[2i+1], ARGV[2i+2]  limit i's amount and window (microseconds)
--   ARGV[2n+3], ARGV[2n+4], ARGV[2n+5]  the cap, the slot ttl in ms, the new slot's id
-- Returns integers: verdict, now (µs), then per limit: left, left_now, reset, reset_now,
-- retry (see gateway/stores/strategies.py). Verdict 0: admitted, every limit charged and
-- the slot taken; i: limit i (the first) has no room for cost; -1: the cap is reached.
-- Refused: nothing charged (expired slots are still purged).
-- The clock is Redis TIME: every replica decides by one clock, so their clock skew
-- does not matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local n = tonumber(ARGV[2])

local reply = {0, now}
local states = {}
local refused = 0
for i = 1, n do
    local amount, window = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
    local ok, left, left_now, reset, reset_now, retry, state =
        decide(KEYS[i], amount, window, cost, now)
    states[i] = state
    local j = 5 * i - 2
    reply[j], reply[j + 1], reply[j + 2], reply[j + 3], reply[j + 4] =
        left, left_now, reset, reset_now, retry
    if refused == 0 and not ok then
        refused = i
    end
end

local slots = KEYS[n + 1]
local now_ms = math.floor(now / 1000)
if slots then
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', now_ms)  -- a crashed replica's slots
    if redis.call('ZCARD', slots) >= tonumber(ARGV[2 * n + 3]) then
        reply[1] = -1
        return reply
    end
end
if refused > 0 then
    reply[1] = refused
    return reply
end

if cost > 0 then
    for i = 1, n do
        commit(KEYS[i], states[i], tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2]),
               cost, now)
    end
end
if slots then
    local ttl = tonumber(ARGV[2 * n + 4])
    redis.call('ZADD', slots, now_ms + ttl, ARGV[2 * n + 5])
    if redis.call('PTTL', slots) < ttl then
        redis.call('PEXPIRE', slots, ttl)
    end
end
return reply
