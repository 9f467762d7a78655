-- Charge one request against every moving-window limit that applies and take an
-- in-flight slot: all or nothing, in one round trip (see docs/rate-limits.md).
--   KEYS[1..n]  the limits' moving windows, in the `limits` library's own layout: a list of
--               timestamps (seconds), newest first, at most `amount` long, expiring a
--               window after the last charge (acquire_moving_window.lua in `limits`)
--   KEYS[n+1]   the tenant's in-flight slots, when ARGV[2n+3] is given (acquire_slot.lua)
--   ARGV[1]     cost: entries each limit is charged;  ARGV[2]  n, the number of limits
--   ARGV[2i+1], ARGV[2i+2]  limit i's amount and window length in seconds
--   ARGV[2n+3], ARGV[2n+4], ARGV[2n+5]  the cap, the slot ttl in ms, the new slot's id
-- Returns one string, space-separated (redis-py parses it faster than an array):
--   "verdict now_s now_us count_1 oldest_1 ... count_n oldest_n"
--   verdict   0: admitted, every limit charged and the slot taken; i: limit i (the first
--             one) has no room for cost; -1: the cap is reached. Refused: nothing charged
--             (expired slots are still purged).
--   now       Redis time (seconds, microseconds)
--   count_i   entries in limit i's window before this request; oldest_i the oldest of
--             them as stored, 0 when there are none.
-- The clock is Redis TIME, not the caller's: every replica then stamps with one clock,
-- which keeps each list in time order (the searches below and `limits` rely on it) and
-- makes replica clock skew irrelevant.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local n = tonumber(ARGV[2])

-- Entries of KEYS[i] no older than `since`, and the oldest of them (the list is sorted).
local function window(key, amount, since)
    local high = math.min(amount, redis.call('LLEN', key)) - 1
    if high < 0 then
        return 0, nil
    end
    local last = redis.call('LINDEX', key, high)
    if tonumber(last) >= since then
        return high + 1, last  -- the common case: the whole list is inside the window
    end
    local low, found, oldest = 0, -1, nil
    high = high - 1
    while low <= high do  -- binary search, as limits' moving_window.lua does
        local mid = math.floor((low + high) / 2)
        local entry = redis.call('LINDEX', key, mid)
        if tonumber(entry) >= since then
            found, oldest, low = mid, entry, mid + 1
        else
            high = mid - 1
        end
    end
    return found + 1, oldest
end

local reply = {0, t[1], t[2]}
local refused = 0
for i = 1, n do
    local amount = tonumber(ARGV[2 * i + 1])
    local count, oldest = window(KEYS[i], amount, now - tonumber(ARGV[2 * i + 2]))
    reply[2 * i + 2] = count
    reply[2 * i + 3] = oldest or 0
    if refused == 0 and count + cost > amount then
        refused = i
    end
end

local slots = KEYS[n + 1]
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if slots then
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', now_ms)  -- a crashed replica's slots
    if redis.call('ZCARD', slots) >= tonumber(ARGV[2 * n + 3]) then
        reply[1] = -1
        return table.concat(reply, ' ')
    end
end
if refused > 0 then
    reply[1] = refused
    return table.concat(reply, ' ')
end

local entries = {}
for j = 1, cost do
    entries[j] = now
end
for i = 1, n do
    local key, amount = KEYS[i], tonumber(ARGV[2 * i + 1])
    for j = 1, cost, 5000 do  -- unpack() is bounded by Lua's stack
        redis.call('LPUSH', key, unpack(entries, j, math.min(j + 4999, cost)))
    end
    redis.call('LTRIM', key, 0, amount - 1)
    redis.call('EXPIRE', key, tonumber(ARGV[2 * i + 2]))
end
if slots then
    local ttl = tonumber(ARGV[2 * n + 4])
    redis.call('ZADD', slots, now_ms + ttl, ARGV[2 * n + 5])
    if redis.call('PTTL', slots) < ttl then
        redis.call('PEXPIRE', slots, ttl)
    end
end
return table.concat(reply, ' ')
