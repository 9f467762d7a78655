-- Take the webhook deliveries that are due, leasing each until ARGV[2]: a worker that
-- dies mid-delivery leaves it due again when the lease ends.
-- KEYS: 1 webhook due zset
-- ARGV: 1 now (microseconds), 2 lease end (microseconds), 3 most to take
-- Returns the job ids taken.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
return ids
