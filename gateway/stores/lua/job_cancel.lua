-- Cancel a queued job of this tenant. A worker that receives its entry later drops it.
-- KEYS: 1 job hash, 2 tenant's pending zset
-- ARGV: 1 tenant, 2 finished (unix seconds), 3 ttl of the finished job (ms)
-- Returns '' (no such job of this tenant), 'cancelled', or the status that forbids it.
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then
  return ''
end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' then
  return status
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished', ARGV[2])
redis.call('HDEL', KEYS[1], 'body')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id'))
return 'cancelled'
