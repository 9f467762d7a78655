-- Enqueue a job, or find the one its Idempotency-Key already names: one atomic call, so
-- concurrent identical submissions make one job.
-- KEYS: 1 job hash, 2 stream, 3 tenant's pending zset, 4 tenant's index zset,
--       5 idempotency key ('' when the request has none)
-- ARGV: 1 job id, 2 created (microseconds), 3 cap (jobs queued or running),
--       4 stream MAXLEN, 5 index entries kept, 6 ttl of an unfinished job (ms),
--       7 idempotency record prefix ('J' .. fingerprint), 8 idempotency ttl (ms),
--       9 job hash key prefix, 10.. the job hash's field/value pairs
-- Returns {'created' | 'existing' | 'full' | 'mismatch', job id}
local idem = KEYS[5]
if idem ~= '' then
  local found = redis.call('GET', idem)
  if found then
    local n = string.len(ARGV[7])
    if string.sub(found, 1, n) ~= ARGV[7] then
      return {'mismatch', ''}
    end
    local id = string.sub(found, n + 2)
    if redis.call('EXISTS', ARGV[9] .. id) == 1 then
      return {'existing', id}
    end
    -- Its job has expired: the key starts afresh.
  end
end
-- Members of jobs whose hash expired unfinished would hold the cap forever.
local oldest = tonumber(ARGV[2]) - tonumber(ARGV[6]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. oldest)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then
  return {'full', ''}
end
local fields = {}
for i = 10, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'job', ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[5]) + 1))
if idem ~= '' then
  redis.call('SET', idem, ARGV[7] .. '\n' .. ARGV[1], 'PX', ARGV[8])
end
return {'created', ARGV[1]}
