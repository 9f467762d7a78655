-- A stopping worker hands a running job back: queued again, at the end of the stream,
-- the attempt not counted against the job.
-- KEYS: 1 job hash, 2 stream
-- ARGV: 1 group, 2 entry id, 3 token, 4 stream MAXLEN
-- Returns 1 when handed back, 0 when the attempt was stale.
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[3]
    or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'job', redis.call('HGET', KEYS[1], 'id'))
return 1
