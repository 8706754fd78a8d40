"""The Lua scripts of `RedisTaskQueue` (see adapters/redis.py for the keys they work on).

Both take, per queue and in this order, its ``ready``, ``delayed``, ``wake`` and ``kinds``
keys.
"""

from __future__ import annotations

# ARGV: per queue, one JSON array of [id, priority, run_at ms, ready score or "", and the
# task's type when the queue keeps kinds] (one string decoded by cjson costs far less to send
# than four arguments per id). A due id goes to
# ``ready`` and leaves ``delayed`` so it is not delivered twice; a future one is not delayed
# while the same id is ready, since the ready entry is earlier. LT lets an earlier run_at win.
# Due ids are added and removed in bulk, at most CHUNK values per command (Lua's unpack has a
# limit).
#
# A delayed id due before everything ``delayed`` held puts a member in ``wake``, always the
# same one, so the set never holds more than one: a pop blocked on it returns, runs the pop
# script, and so learns the sooner due time. The earliest member is looked up once per queue
# and only when a delayed id comes, so a push of due ids costs what it did before.
PUSH = """
local CHUNK = 1000
local function bulk(command, key, values, lt)
  for s = 1, #values, CHUNK do
    local last = math.min(s + CHUNK - 1, #values)
    if lt then
      redis.call(command, key, 'LT', unpack(values, s, last))
    else
      redis.call(command, key, unpack(values, s, last))
    end
  end
end
for q = 1, #ARGV do
  local ready, delayed, wake, kinds = KEYS[4 * q - 3], KEYS[4 * q - 2], KEYS[4 * q - 1], KEYS[4 * q]
  local adds, gone, typed = {}, {}, {}
  local soonest, sooner = nil, false
  for _, item in ipairs(cjson.decode(ARGV[q])) do
    local id, delayed_member = item[1], item[2] .. ':' .. item[1]
    if item[5] then
      typed[#typed + 1] = id
      typed[#typed + 1] = item[5]
    end
    if item[4] ~= '' then
      adds[#adds + 1] = item[4]
      adds[#adds + 1] = id
      gone[#gone + 1] = delayed_member
    elseif not redis.call('ZSCORE', ready, id) then
      if not soonest then
        local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
        soonest = first[2] and tonumber(first[2]) or math.huge
      end
      if tonumber(item[3]) < soonest then sooner = true end
      redis.call('ZADD', delayed, 'LT', item[3], delayed_member)
    end
  end
  bulk('ZADD', ready, adds, true)
  bulk('ZREM', delayed, gone, false)
  bulk('HSET', kinds, typed, false)
  if sooner then redis.call('ZADD', wake, 0, 'due-sooner') end
end
"""

# ARGV: now (epoch ms), limit, PROMOTE_BATCH, PRIORITY_SPAN, MAX_PRIORITY, "1" if the caller
# blocks when nothing comes out, else "0", "1" if the queue keeps kinds, else "0".
# Returns {popped ids, ms until the next delayed member is due or -1, malformed members,
# kinds}: with kinds kept, for each popped id "<queue's position>:<type>", or "" when its push
# told no type (its entry in ``kinds`` goes with it).
# The wait is only computed when nothing was popped: only a caller about to block needs it.
# Such a caller now knows the earliest due time, so the wake members meant to tell a blocked
# pop are dropped; a push after this script leaves a new one, which ends its block at once.
# A caller that will not block leaves them for the pops that do.
POP = """
local now, limit, batch, span = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local top, blocking, keeps = tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7] == '1'
local malformed, kinds = {}, {}
for i = 1, #KEYS, 4 do
  local due = redis.call('ZRANGE', KEYS[i + 1], '-inf', now, 'BYSCORE', 'LIMIT', 0, batch,
    'WITHSCORES')
  if #due > 0 then
    local ready, gone = {}, {}
    for j = 1, #due, 2 do
      gone[#gone + 1] = due[j]
      local priority, id = string.match(due[j], '^(%d+):(.+)$')
      if priority then
        local score = (top - tonumber(priority)) * span + tonumber(due[j + 1])
        ready[#ready + 1] = string.format('%.0f', score)
        ready[#ready + 1] = id
      else
        malformed[#malformed + 1] = string.sub(due[j], 1, 100)
      end
    end
    if #ready > 0 then
      redis.call('ZADD', KEYS[i], 'LT', unpack(ready))
    end
    redis.call('ZREM', KEYS[i + 1], unpack(gone))
  end
end
local ids = {}
for i = 1, #KEYS, 4 do
  if #ids >= limit then break end
  local popped, mine = redis.call('ZPOPMIN', KEYS[i], limit - #ids), {}
  for j = 1, #popped, 2 do
    ids[#ids + 1] = popped[j]
    mine[#mine + 1] = popped[j]
  end
  if keeps and #mine > 0 then
    local types = redis.call('HMGET', KEYS[i + 3], unpack(mine))
    redis.call('HDEL', KEYS[i + 3], unpack(mine))
    for j = 1, #mine do
      kinds[#kinds + 1] = types[j] and (((i + 3) / 4) .. ':' .. types[j]) or ''
    end
  end
end
local wait = -1
if #ids == 0 then
  for i = 1, #KEYS, 4 do
    if blocking then redis.call('DEL', KEYS[i + 2]) end
    local first = redis.call('ZRANGE', KEYS[i + 1], 0, 0, 'WITHSCORES')
    if first[2] then
      local ms = math.max(0, tonumber(first[2]) - now)
      if wait < 0 or ms < wait then wait = ms end
    end
  end
end
return {ids, wait, malformed, kinds}
"""

# KEYS[1]: a queue's ``kinds``; ARGV: the ids a blocking pop took from that queue. Returns their
# types ("" when their push told none) and forgets them.
TAKE_KINDS = """
local types = redis.call('HMGET', KEYS[1], unpack(ARGV))
redis.call('HDEL', KEYS[1], unpack(ARGV))
for j = 1, #ARGV do types[j] = types[j] or '' end
return types
"""
