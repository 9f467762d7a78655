-- A worker's heartbeat: reset the idle time of the entries it still holds, so no other
-- worker takes them over; report those it lost (another worker holds a newer token, or
-- the job is gone). A job it has just finished is neither renewed nor lost.
-- KEYS: 1 stream, 2.. the jobs' hashes
-- ARGV: 1 group, 2 consumer, then (entry id, token) per job
-- Returns the 1-based positions of the jobs lost.
local lost = {}
for i = 2, #KEYS do
  local entry, token = ARGV[2 * i - 1], ARGV[2 * i]
  if redis.call('HGET', KEYS[i], 'token') ~= token then
    lost[#lost + 1] = i - 1
  elseif redis.call('HGET', KEYS[i], 'status') == 'running' then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, entry, 'JUSTID')
  end
end
return lost
