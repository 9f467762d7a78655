-- fixed-window: a counter per window aligned to the epoch. KEYS[i] is a hash
-- {w = window index, c = units charged in it}, expiring at the window's end. Same
-- arithmetic as fixed_window_decide/commit in gateway/stores/strategies.py.
local function counted(key, window, now)
    local index = math.floor(now / window)
    local f = redis.call('HMGET', key, 'w', 'c')
    if tonumber(f[1]) == index then
        return index, tonumber(f[2])
    end
    return index, 0
end

local function decide(key, amount, window, cost, now)
    local index, count = counted(key, window, now)
    local finish = (index + 1) * window - now
    local left_now = amount - count
    local reset_now = window
    if count > 0 then
        reset_now = finish
    end
    if count + cost > amount then
        local retry = finish
        if cost > amount then
            retry = window
        end
        return false, 0, left_now, reset_now, reset_now, retry, count
    end
    local reset = window
    if count + cost > 0 then
        reset = finish
    end
    return true, left_now - cost, left_now, reset, reset_now, 0, count
end

local function commit(key, count, amount, window, cost, now)
    local index = math.floor(now / window)
    redis.call('HSET', key, 'w', string.format('%d', index), 'c', count + cost)
    redis.call('PEXPIREAT', key, math.floor((index + 1) * window / 1000))
end

