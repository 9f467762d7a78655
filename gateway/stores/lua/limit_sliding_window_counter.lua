-- sliding-window-counter: this window's count plus the previous window's, weighted by
-- the share of it still inside the last `window` µs. KEYS[i] is a hash {w = window
-- index, c = its count, p = the previous window's}, expiring when both have passed.
-- Same arithmetic as sliding_window_counter_decide/commit in gateway/stores/strategies.py.
local function counts(key, index)
    local f = redis.call('HMGET', key, 'w', 'c', 'p')
    local w = tonumber(f[1])
    if w == nil or w < index - 1 then
        return 0, 0
    end
    if w == index - 1 then
        return 0, tonumber(f[2])
    end
    return tonumber(f[2]), tonumber(f[3])
end

local function decide(key, amount, window, cost, now)
    local index = math.floor(now / window)
    local cur, prev = counts(key, index)
    local elapsed = now - index * window
    local function wait(count, units)
        local target = amount - units
        if prev * (window - elapsed) / window + count <= target then
            return 0
        end
        if count <= target then
            return math.ceil(window * (1 - (target - count) / prev) - elapsed)
        end
        return math.ceil(window - elapsed + window * (1 - target / count))
    end
    local weighted = prev * (window - elapsed) / window + cur
    local left_now = math.max(0, math.floor(amount - weighted))
    local reset_now = window
    if weighted > 0 then
        reset_now = wait(cur, left_now + 1)
    end
    local retry = window
    if cost <= amount then
        retry = wait(cur, cost)
    end
    if weighted + cost > amount then
        return false, 0, left_now, reset_now, reset_now, retry, nil
    end
    local left = math.max(0, math.floor(amount - weighted - cost))
    local reset = window
    if weighted + cost > 0 then
        reset = wait(cur + cost, left + 1)
    end
    return true, left, left_now, reset, reset_now, 0, nil
end

local function commit(key, _, amount, window, cost, now)
    local index = math.floor(now / window)
    local cur, prev = counts(key, index)
    redis.call('HSET', key, 'w', string.format('%d', index), 'c', cur + cost, 'p', prev)
    redis.call('PEXPIREAT', key, math.floor((index + 2) * window / 1000))
end

