-- Claim an Idempotency-Key for a synchronous request, or find what it already holds.
-- Records: 'P' .. fingerprint (in progress), 'A' .. fingerprint .. '\n' .. answer (done),
-- 'J' .. fingerprint .. '\n' .. job id (an asynchronous submission, job_submit.lua).
-- KEYS: 1 idempotency key
-- ARGV: 1 fingerprint, 2 lease of the claim (ms)
-- Returns {'new' | 'busy' | 'done' | 'mismatch', stored answer or ''}
local found = redis.call('GET', KEYS[1])
if not found then
  redis.call('SET', KEYS[1], 'P' .. ARGV[1], 'PX', ARGV[2])
  return {'new', ''}
end
local n = string.len(ARGV[1])
local kind = string.sub(found, 1, 1)
if string.sub(found, 2, n + 1) ~= ARGV[1] or kind == 'J' then
  return {'mismatch', ''}
end
if kind == 'P' then
  return {'busy', ''}
end
return {'done', string.sub(found, n + 3)}
