-- Extend the expiry of the live slots one replica holds.
--   KEYS[i]    the sorted set of slot i;  ARGV[1] slot ttl in ms;  ARGV[i + 1] slot i's id
-- ZADD XX only updates: a slot that expired meanwhile is not brought back.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
    if redis.call('PTTL', key) < ttl then
        redis.call('PEXPIRE', key, ttl)
    end
end
return #KEYS
