-- A worker starts a delivered stream entry: a new fencing token, or the entry dropped.
-- KEYS: 1 job hash, 2 stream
-- ARGV: 1 group, 2 entry id, 3 now (unix seconds), 4 consumer
-- Returns {} when the entry is void (its job finished, was cancelled or expired), else
-- the job's hash as a flat list, with its new token and attempt count.
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
  return {}
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'entry', ARGV[2], 'worker', ARGV[4])
if redis.call('HEXISTS', KEYS[1], 'started') == 0 then
  redis.call('HSET', KEYS[1], 'started', ARGV[3])
end
return redis.call('HGETALL', KEYS[1])
