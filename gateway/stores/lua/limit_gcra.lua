-- gcra: a bucket of `amount` units refilled one unit every ceil(window / amount) µs.
-- KEYS[i] holds the theoretical arrival time (µs): when the bucket is full again; it
-- expires then, and a missing key is a full bucket. Same arithmetic as gcra_decide and
-- gcra_commit in gateway/stores/strategies.py (integers, exact in doubles below 2^53).
local function interval_of(amount, window)
    local interval = math.floor(window / amount)
    if interval * amount < window then
        interval = interval + 1
    end
    return interval
end

local function decide(key, amount, window, cost, now)
    local interval = interval_of(amount, window)
    local burst = interval * amount
    local tat = tonumber(redis.call('GET', key))
    local used = 0
    if tat and tat > now then
        used = tat - now
    end
    local function wait(in_use, units)
        return math.max(0, in_use - (burst - units * interval))
    end
    local left_now = math.floor((burst - used) / interval)
    local reset_now = window
    if left_now < amount then
        reset_now = wait(used, left_now + 1)
    end
    local retry = window
    if cost <= amount then
        retry = wait(used, cost)
    end
    local after = used + cost * interval
    if after > burst then
        return false, 0, left_now, reset_now, reset_now, retry, tat
    end
    local left = math.floor((burst - after) / interval)
    local reset = window
    if left < amount then
        reset = wait(after, left + 1)
    end
    return true, left, left_now, reset, reset_now, 0, tat
end

local function commit(key, tat, amount, window, cost, now)
    local base = now
    if tat and tat > now then
        base = tat
    end
    local new = base + cost * interval_of(amount, window)
    redis.call('SET', key, string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
end

