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

-- set_status moves job id from its current status to 'to', keeping the status
-- index and the active set right, and gives a terminal job its expiry.
local function set_status(prefix, id, from, to, now, retention)
  local key = prefix .. 'job:' .. id
  local created = redis.call('HGET', key, 'created') or now
  redis.call('HSET', key, 'status', to, 'updated', now)
  if from ~= to then
    redis.call('ZREM', prefix .. 'jobs:status:' .. from, id)
    redis.call('ZADD', prefix .. 'jobs:status:' .. to, created, id)
  end
  if terminal(to) then
    redis.call('HSET', key, 'finished', now)
    redis.call('SREM', prefix .. 'jobs:active', id)
    if tonumber(retention) > 0 then
      redis.call('EXPIRE', key, retention)
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

local function listed(list, s)
  return string.find(',' .. list .. ',', ',' .. s .. ',', 1, true) ~= nil
end
`

// recordScript creates a job in ACCEPTED unless its id exists.
//
//	ARGV: prefix, id, fingerprint, created (µs), user, field/value pairs...
//	returns {"created"|"exists"|"conflict", status}
var recordScript = redis.NewScript(luaLib + `
local prefix, id, fp, created, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = prefix .. 'job:' .. id
local st = redis.call('HGET', key, 'status')
if st then
  if redis.call('HGET', key, 'fp') == fp then return {'exists', st} end
  return {'conflict', st}
end
redis.call('HSET', key, 'id', id, 'fp', fp, 'status', 'ACCEPTED', 'created', created, 'updated', created, 'attempt', 0)
set_fields(prefix, id, 6)
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
//	  "killed"   a kill was requested before it ran; it is now KILLED
//	  "busy"     a live worker owns it; hand the message back
//	  "lost"     its owner died and its retries are spent; it is now LOST
var claimScript = redis.NewScript(luaLib + `
local prefix, id, worker, lease, now, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = prefix .. 'job:' .. id
local st = redis.call('HGET', key, 'status')
if not st then return {'missing', '', 0} end
local attempt = tonumber(redis.call('HGET', key, 'attempt') or '0')
if terminal(st) then return {'terminal', st, attempt} end
if redis.call('HGET', key, 'kill') == '1' then
  redis.call('HSET', key, 'message', 'killed before it ran')
  set_status(prefix, id, st, 'KILLED', now, retention)
  return {'killed', st, attempt}
end
if st == 'CLAIMED' or st == 'INIT' or st == 'RUNNING' then
  local owner = redis.call('HGET', key, 'worker') or ''
  if owner ~= '' and redis.call('EXISTS', prefix .. 'worker:' .. owner) == 1 then
    return {'busy', st, attempt}
  end
  local retries = tonumber(redis.call('HGET', key, 'retries') or '0')
  if attempt > retries then
    redis.call('HSET', key, 'message', 'worker ' .. owner .. ' was lost during attempt ' .. attempt .. ' and no retries are left')
    set_status(prefix, id, st, 'LOST', now, retention)
    return {'lost', st, attempt}
  end
elseif st ~= 'QUEUED' and st ~= 'ACCEPTED' then
  return {'busy', st, attempt}
end
attempt = attempt + 1
redis.call('HSET', key, 'worker', worker, 'lease', lease, 'attempt', attempt, 'claimed', now)
redis.call('HDEL', key, 'started', 'exitCode', 'message')
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
