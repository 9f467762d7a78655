-- Take one in-flight slot under KEYS[1] if fewer than ARGV[1] are live.
--   KEYS[1]  sorted set of slot ids, each scored by its expiry (Redis time, ms)
--   ARGV[1]  the cap; ARGV[2] slot ttl in ms; ARGV[3] the new slot's id
-- Expired slots (a crashed replica's) are purged first, so they never count.
-- Returns 1 when the slot was taken, 0 when the cap is reached.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
