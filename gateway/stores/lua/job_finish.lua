-- Write a job's outcome, fenced: only the attempt holding the current token may, and
-- only once; a late duplicate (a worker that lost its lease) changes nothing.
-- KEYS: 1 job hash, 2 stream, 3 tenant's pending zset, 4 webhook due zset
-- ARGV: 1 group, 2 entry id, 3 token, 4 status, 5 outcome, 6 finished (unix seconds),
--       7 ttl of the finished job (ms), 8 now (microseconds)
-- Returns 1 when written, 0 when the attempt was stale.
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[3]
    or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
local id = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'outcome', ARGV[5], 'finished', ARGV[6])
redis.call('HDEL', KEYS[1], 'body')
if redis.call('HEXISTS', KEYS[1], 'callback') == 1 then
  redis.call('HSET', KEYS[1], 'webhook', 'pending')
  redis.call('ZADD', KEYS[4], ARGV[8], id)
end
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[3], id)
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
return 1
