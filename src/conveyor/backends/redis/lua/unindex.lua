-- unindex: forget entries of the job id index (one shard) that point at a queue where the
-- job is gone for good: its tombstone was pruned, or the enqueue that indexed it stored
-- nothing. An entry that meanwhile points at another queue is left alone.
--
-- KEYS[1]  one shard of the job id index (job id -> queue)
-- ARGV[1]  the queue the entries must point at
-- ARGV[2..] job ids
-- Returns how many entries were removed.

local removed = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
