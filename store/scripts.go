package store

import (
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/job"
)

// Every change of a job's status goes through one of these scripts, so that
// reading the current status, checking the lease (fencing) and writing the new
// status happen atomically. Keys are built from the prefix in ARGV[1] as in
// keys.go; the scripts therefore need a single Redis (or a primary with
// replicas), not Redis Cluster.

// luaLib is shared by every script. It knows the status machine only through
// the allowed-source lists the Go side passes in (job.Sources).
const luaLib = `
local function terminal(st)
  return st == 'SUCCEEDED' or st == 'FAILED' or st == 'KILLED' or st == 'TIMED_OUT' or st == 'LOST' or st == 'INVALID'
end

-- count_waiting adds (sign 1) or takes away (-1) a QUEUED job from the
-- memory and jobs waiting for its cluster, which the autoscaler reads in
-- O(clusters) (see pools.go).
local function count_waiting(prefix, key, sign)
  local cluster = redis.call('HGET', key, 'cluster')
  if not cluster then return end
  local mem = tonumber(redis.call('HGET', key, 'memory') or '0') or 0
  -- As an integer string: Lua would send -1 * 0 as "-0", which Redis
  -- refuses as an increment (miniredis takes it).
  redis.call('HINCRBY', prefix .. 'waiting:memory', cluster, string.format('%d', sign * mem))
  redis.call('HINCRBY', prefix .. 'waiting:jobs', cluster, sign)
end

-- track_user_active keeps the set of a user's unfinished jobs, whose size
-- the per-user active limit reads (recordScript): every move to an
-- unfinished status adds the job, the move to a finished one removes it.
local function track_user_active(prefix, key, id, to)
  local user = redis.call('HGET', key, 'user')
  if not user or user == '' then return end
  if terminal(to) then
    redis.call('SREM', prefix .. 'jobs:active:user:' .. user, id)
  else
    redis.call('SADD', prefix .. 'jobs:active:user:' .. user, id)
  end
end

-- push_history appends a status change to the job's history, oldest first,
-- as the JSON of job.Event without the id (time as µs in a string: cjson
-- would round it). It keeps the last 100 changes (HistoryKept in jobs.go);
-- set_status gives it the job's expiry.
local function push_history(key, to, now)
  local h = key .. ':history'
  redis.call('RPUSH', h, cjson.encode({status = to, time = now,
    attempt = tonumber(redis.call('HGET', key, 'attempt') or '0') or 0,
    worker = redis.call('HGET', key, 'worker') or '', message = redis.call('HGET', key, 'message') or ''}))
  redis.call('LTRIM', h, -100, -1)
end

-- set_status moves job id from its current status to 'to', keeping the status
-- index, the waiting counts, the active set and the history right, and gives
-- a terminal job (and its history) its expiry.
local function set_status(prefix, id, from, to, now, retention)
  local key = prefix .. 'job:' .. id
  local created = redis.call('HGET', key, 'created') or now
  redis.call('HSET', key, 'status', to, 'updated', now)
  push_history(key, to, now)
  track_user_active(prefix, key, id, to)
  if from ~= to then
    redis.call('ZREM', prefix .. 'jobs:status:' .. from, id)
    redis.call('ZADD', prefix .. 'jobs:status:' .. to, created, id)
    if from == 'QUEUED' or to == 'QUEUED' then count_waiting(prefix, key, to == 'QUEUED' and 1 or -1) end
  end
  if terminal(to) then
    redis.call('HSET', key, 'finished', now)
    redis.call('SREM', prefix .. 'jobs:active', id)
    if tonumber(retention) > 0 then
      redis.call('EXPIRE', key, retention)
      redis.call('EXPIRE', key .. ':history', retention)
    end
  end
end

-- set_fields writes field/value pairs from ARGV starting at index i; a field
-- named 'cluster' also indexes the job by cluster.
local function set_fields(prefix, id, i)
  local key = prefix .. 'job:' .. id
  local created = redis.call('HGET', key, 'created')
  while i < #ARGV do
    local f, v = ARGV[i], ARGV[i + 1]
    if v == '' then
      redis.call('HDEL', key, f)
    else
      redis.call('HSET', key, f, v)
      if f == 'cluster' then
        redis.call('ZADD', prefix .. 'jobs:cluster:' .. v, created, id)
      end
    end
    i = i + 2
  end
end

-- owner_alive reports whether the worker that owns job key still runs: its
-- heartbeat is there, and it comes from the same run of the worker that
-- claimed the job (a worker restarted with the same id owns nothing).
local function owner_alive(prefix, key, owner)
  if owner == '' or redis.call('EXISTS', prefix .. 'worker:' .. owner) == 0 then return false end
  local inc = redis.call('HGET', key, 'owner_inc')
  if not inc or inc == '' then return true end
  return redis.call('GET', prefix .. 'alive:' .. owner) == inc
end

local function listed(list, s)
  return string.find(',' .. list .. ',', ',' .. s .. ',', 1, true) ~= nil
end
`

// recordScript creates a job in ACCEPTED unless its id exists, and unless
// its user already has limit unfinished jobs (limit 0: no limit).
//
//	ARGV: prefix, id, fingerprint, created (µs), user, limit, field/value pairs...
//	returns {"created"|"exists"|"conflict", status} or {"limited", active jobs}
//
// The count is the size of the user's set of unfinished jobs, which every
// status change keeps (track_user_active), so it cannot drift from the
// records. At the limit the set is checked against the records first: a
// member whose record is gone or finished (deleted by hand, or restored by
// an older version) is dropped, so an error can never lock a user out.
var recordScript = redis.NewScript(luaLib + `
local prefix, id, fp, created, user, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local key = prefix .. 'job:' .. id
local st = redis.call('HGET', key, 'status')
if st then
  if redis.call('HGET', key, 'fp') == fp then return {'exists', st} end
  return {'conflict', st}
end
if user ~= '' and limit > 0 then
  local ukey = prefix .. 'jobs:active:user:' .. user
  if redis.call('SCARD', ukey) >= limit then
    for _, m in ipairs(redis.call('SMEMBERS', ukey)) do
      local s = redis.call('HGET', prefix .. 'job:' .. m, 'status')
      if not s or terminal(s) then redis.call('SREM', ukey, m) end
    end
    local n = redis.call('SCARD', ukey)
    if n >= limit then return {'limited', tostring(n)} end
  end
end
redis.call('HSET', key, 'id', id, 'fp', fp, 'status', 'ACCEPTED', 'created', created, 'updated', created, 'attempt', 0)
set_fields(prefix, id, 7)
push_history(key, 'ACCEPTED', created)
if user ~= '' then redis.call('SADD', prefix .. 'jobs:active:user:' .. user, id) end
redis.call('ZADD', prefix .. 'jobs:all', created, id)
if user ~= '' then redis.call('ZADD', prefix .. 'jobs:user:' .. user, created, id) end
redis.call('ZADD', prefix .. 'jobs:status:ACCEPTED', created, id)
redis.call('SADD', prefix .. 'jobs:active', id)
return {'created', 'ACCEPTED'}
`)

// transitionScript moves a job to a new status, fenced by its lease.
//
//	ARGV: prefix, id, to, allowed sources (comma list), lease ("" = unfenced),
//	      now (µs), retention (s), field/value pairs...
//	returns {"ok"|"missing"|"stale"|"refused"|"killed", current status}
//
// "killed": the job has a kill request and the move was forward progress
// (INIT or RUNNING); the caller must end it as KILLED instead.
var transitionScript = redis.NewScript(luaLib + `
local prefix, id, to, allowed, lease, now, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local key = prefix .. 'job:' .. id
local st = redis.call('HGET', key, 'status')
if not st then return {'missing', ''} end
if lease ~= '' and redis.call('HGET', key, 'lease') ~= lease then return {'stale', st} end
if not listed(allowed, st) then return {'refused', st} end
if (to == 'INIT' or to == 'RUNNING') and redis.call('HGET', key, 'kill') == '1' then return {'killed', st} end
set_fields(prefix, id, 8)
if to == 'RUNNING' then redis.call('HSET', key, 'started', now) end
if to == 'QUEUED' then redis.call('HSET', key, 'queued', now) end
set_status(prefix, id, st, to, now, retention)
return {'ok', st}
`)

// claimScript gives a job to a worker as a new attempt.
//
//	ARGV: prefix, id, worker, lease, now (µs), retention (s)
//	returns {outcome, status, attempt}, outcome one of:
//	  "claimed"  the caller owns attempt <attempt>; run it
//	  "missing"  no record (Redis lost it); the caller re-records and retries
//	  "terminal" the job is finished; drop the message
//	  "killed"   a kill was requested and no live worker owns it; it is now KILLED
//	  "busy"     a live worker owns it; hand the message back
//	  "lost"     its owner died and its retries are spent; it is now LOST
//
// A live owner keeps its job even when a kill was requested: it has been told
// and writes the final status itself. The same worker claiming again under
// the same lease is one claim run twice (go-redis retries a command after a
// network error) and gets its attempt back.
var claimScript = redis.NewScript(luaLib + `
local prefix, id, worker, lease, now, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = prefix .. 'job:' .. id
local st = redis.call('HGET', key, 'status')
if not st then return {'missing', '', 0} end
local attempt = tonumber(redis.call('HGET', key, 'attempt') or '0')
if terminal(st) then return {'terminal', st, attempt} end
local kill = redis.call('HGET', key, 'kill') == '1'
if st == 'CLAIMED' or st == 'INIT' or st == 'RUNNING' then
  local owner = redis.call('HGET', key, 'worker') or ''
  if st == 'CLAIMED' and owner == worker and redis.call('HGET', key, 'lease') == lease then
    return {'claimed', st, attempt}
  end
  if owner_alive(prefix, key, owner) then
    return {'busy', st, attempt}
  end
  if kill then
    redis.call('HSET', key, 'message', 'killed on request; worker ' .. owner .. ' was lost during attempt ' .. attempt)
    set_status(prefix, id, st, 'KILLED', now, retention)
    return {'killed', st, attempt}
  end
  local retries = tonumber(redis.call('HGET', key, 'retries') or '0')
  if attempt > retries then
    redis.call('HSET', key, 'message', 'worker ' .. owner .. ' was lost during attempt ' .. attempt .. ' and no retries are left')
    set_status(prefix, id, st, 'LOST', now, retention)
    return {'lost', st, attempt}
  end
elseif st == 'QUEUED' or st == 'ACCEPTED' then
  if kill then -- unreachable through killScript, which ends such a job at once
    redis.call('HSET', key, 'message', 'killed before it ran')
    set_status(prefix, id, st, 'KILLED', now, retention)
    return {'killed', st, attempt}
  end
else
  return {'busy', st, attempt}
end
attempt = attempt + 1
redis.call('HSET', key, 'worker', worker, 'lease', lease, 'attempt', attempt, 'claimed', now)
redis.call('HDEL', key, 'started', 'exitCode', 'message', 'owner_inc')
if ARGV[7] and ARGV[7] ~= '' then redis.call('HSET', key, 'owner_inc', ARGV[7]) end
set_status(prefix, id, st, 'CLAIMED', now, retention)
return {'claimed', st, attempt}
`)

// killScript asks for a job to be killed.
//
//	ARGV: prefix, id, now (µs), retention (s)
//	returns {"missing"|"terminal"|"killed"|"signal", status, worker}
//	"killed": it had not been claimed and is now KILLED; "signal": a worker
//	owns it and must be told.
var killScript = redis.NewScript(luaLib + `
local prefix, id, now, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = prefix .. 'job:' .. id
local st = redis.call('HGET', key, 'status')
if not st then return {'missing', '', ''} end
if terminal(st) then return {'terminal', st, ''} end
redis.call('HSET', key, 'kill', '1')
if st == 'ACCEPTED' or st == 'QUEUED' then
  redis.call('HSET', key, 'message', 'killed before it ran')
  set_status(prefix, id, st, 'KILLED', now, retention)
  return {'killed', st, ''}
end
return {'signal', st, redis.call('HGET', key, 'worker') or ''}
`)

// sourcesArg is the allowed-source list of a transition to 'to', for the scripts.
func sourcesArg(to job.Status) string {
	src := job.Sources(to)
	parts := make([]string, len(src))
	for i, s := range src {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}
