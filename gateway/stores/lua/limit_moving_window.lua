-- moving-window: every unit charged is remembered for one window and counts while
-- stamp > now - window. KEYS[i] is a list of stamps (µs), newest first, one entry per
-- unit, at most `amount` long, expiring a window after the last charge. Same decisions
-- as moving_window_decide/commit in gateway/stores/strategies.py.

-- Units of KEYS[i] still in the window (the list is sorted: binary search).
local function in_window(key, amount, since)
    local high = math.min(amount, redis.call('LLEN', key)) - 1
    if high < 0 then
        return 0
    end
    if tonumber(redis.call('LINDEX', key, high)) > since then
        return high + 1  -- the common case: the whole list is inside the window
    end
    local low, found = 0, -1
    high = high - 1
    while low <= high do
        local mid = math.floor((low + high) / 2)
        if tonumber(redis.call('LINDEX', key, mid)) > since then
            found, low = mid, mid + 1
        else
            high = mid - 1
        end
    end
    return found + 1
end

local function decide(key, amount, window, cost, now)
    local count = in_window(key, amount, now - window)
    local function wait(units)  -- µs until the oldest `excess` units have expired
        local excess = count - (amount - units)
        if excess <= 0 then
            return 0
        end
        return tonumber(redis.call('LINDEX', key, count - excess)) + window - now
    end
    local left_now = amount - count
    local reset_now = window
    if left_now < amount then
        reset_now = wait(left_now + 1)
    end
    local retry = window
    if cost <= amount then
        retry = wait(cost)
    end
    if count + cost > amount then
        return false, 0, left_now, reset_now, reset_now, retry, count
    end
    local left = left_now - cost
    local reset = window
    if count > 0 then  -- the oldest unit in the window frees first, or else this one
        reset = tonumber(redis.call('LINDEX', key, count - 1)) + window - now
    end
    return true, left, left_now, reset, reset_now, 0, count
end

local function commit(key, _, amount, window, cost, now)
    local stamp = string.format('%d', now)
    local entries = {}
    for j = 1, math.min(cost, 5000) do
        entries[j] = stamp
    end
    for j = 1, cost, 5000 do  -- unpack() is bounded by Lua's stack
        redis.call('LPUSH', key, unpack(entries, 1, math.min(5000, cost - j + 1)))
    end
    redis.call('LTRIM', key, 0, amount - 1)
    redis.call('PEXPIRE', key, math.floor(window / 1000))
end

