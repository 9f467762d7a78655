-- Give up a claim that produced no answer to store, if it is still this request's.
-- KEYS: 1 idempotency key; ARGV: 1 fingerprint
if redis.call('GET', KEYS[1]) == 'P' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
