package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/job"
)

// Recovery: Redis is soft state. What it loses is rebuilt from the parts that
// are the system of record (a job's message in JINN_JOBS, the worker that
// runs it, the archive), and the leader's repairs are fenced by its token.

// ErrStaleLeader means a newer leader has written: the caller's leadership
// is over and its write was refused.
var ErrStaleLeader = errors.New("a newer leader has taken over")

// Recovery is what is known of a job whose record Redis lost.
type Recovery struct {
	// Job is the record to write back; its Status, ID and Created are
	// required, the rest is written where set.
	Job *job.Job
	// Lease of the attempt that runs it, when one does.
	Lease *job.Lease
	// Retries is the job's retry limit.
	Retries int
	// Fingerprint of its request, so that resubmitting the same request with
	// the same id still finds the job ("" when unknown).
	Fingerprint string
}

// restoreScript writes back the record of a job that has none.
//
//	ARGV: prefix, id, status, created (µs), user, retention (s), field/value pairs...
//	returns "restored" or "exists" (a record exists: it is newer than the
//	caller's knowledge and is left alone)
var restoreScript = redis.NewScript(luaLib + `
local prefix, id, st, created, user, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = prefix .. 'job:' .. id
if redis.call('EXISTS', key) == 1 then return 'exists' end
redis.call('HSET', key, 'id', id, 'status', st, 'created', created)
set_fields(prefix, id, 7)
redis.call('ZADD', prefix .. 'jobs:all', created, id)
if user ~= '' then redis.call('ZADD', prefix .. 'jobs:user:' .. user, created, id) end
redis.call('ZADD', prefix .. 'jobs:status:' .. st, created, id)
if terminal(st) then
  if tonumber(retention) > 0 then redis.call('EXPIRE', key, retention) end
else
  redis.call('SADD', prefix .. 'jobs:active', id)
  if user ~= '' then redis.call('SADD', prefix .. 'jobs:active:user:' .. user, id) end
  if st == 'QUEUED' then count_waiting(prefix, key, 1) end
end
return 'restored'
`)

// Restore writes back the record of a job that Redis lost, unless it has one.
// It reports whether it wrote. Workers call it for the jobs they hold (from
// the job's message and the attempt they run), the reaper for finished jobs
// (from the archive).
func (s *Store) Restore(ctx context.Context, r Recovery) (bool, error) {
	j := r.Job
	if j == nil || j.ID == "" || !j.Status.Valid() {
		return false, errors.New("restore: a job with an id and a status is required")
	}
	created := j.Created
	if created == nil {
		now := s.now()
		created = &now
	}
	args := []any{s.k.prefix, j.ID, string(j.Status), strconv.FormatInt(created.UnixMicro(), 10), j.User, s.retentionSecs()}
	add := func(f, v string) {
		if v != "" {
			args = append(args, f, v)
		}
	}
	t := func(at *time.Time) string {
		if at == nil {
			return ""
		}
		return strconv.FormatInt(at.UnixMicro(), 10)
	}
	add("fp", r.Fingerprint)
	add("name", j.Name)
	add("user", j.User)
	add("message", j.Message)
	add("cluster", j.Cluster)
	add("command", j.Command)
	add("worker", j.Worker)
	args = append(args, "attempt", strconv.Itoa(j.Attempt))
	add("memory", itoa(j.Memory))
	add("peak", itoa(j.Peak))
	args = append(args, "retries", strconv.Itoa(r.Retries))
	if r.Lease != nil {
		add("lease", leaseArg(r.Lease))
	}
	if j.ExitCode != nil {
		add("exitCode", strconv.Itoa(*j.ExitCode))
	}
	if j.KillRequested {
		add("kill", "1")
	}
	add("queued", t(j.Queued))
	add("started", t(j.Started))
	add("finished", t(j.Finished))
	add("updated", s.nowMicros())
	if j.Request != nil {
		req, err := json.Marshal(j.Request)
		if err != nil {
			return false, fmt.Errorf("restore job %s: encode request: %w", j.ID, err)
		}
		add("request", string(req))
	}
	res, err := restoreScript.Run(ctx, s.rdb, nil, args...).Text()
	if err != nil {
		return false, fmt.Errorf("restore job %s: %w", j.ID, err)
	}
	return res == "restored", nil
}

// leadScript records a leader's token: the highest token seen wins.
//
//	ARGV: prefix, token
//	returns "ok" or "stale"
var leadScript = redis.NewScript(`
local key = ARGV[1] .. 'leader:token'
local cur = tonumber(redis.call('GET', key) or '0')
if tonumber(ARGV[2]) < cur then return 'stale' end
redis.call('SET', key, ARGV[2])
return 'ok'
`)

// Lead records that the leader holding token has taken over. Every settle
// of an older leader is refused from then on. It fails with ErrStaleLeader
// when a newer leader has already written.
func (s *Store) Lead(ctx context.Context, token uint64) error {
	res, err := leadScript.Run(ctx, s.rdb, nil, s.k.prefix, strconv.FormatUint(token, 10)).Text()
	if err != nil {
		return fmt.Errorf("record leader token %d: %w", token, err)
	}
	if res == "stale" {
		return fmt.Errorf("leader token %d: %w", token, ErrStaleLeader)
	}
	return nil
}

// settleScript ends a job on the leader's behalf, fenced twice: by the
// leader's token and by the state the leader saw.
//
//	ARGV: prefix, id, token, expected status, expected lease ("" = none),
//	      owner must be dead ("1"/"0"), to, message, now (µs), retention (s),
//	      exit code ("" = none)
//	returns {"ok"|"stale-leader"|"missing"|"changed"|"busy", current status}
//
// "changed": the job moved on (a claim, a status write) since the leader read
// it; "busy": its owner has a live heartbeat again.
var settleScript = redis.NewScript(luaLib + `
local prefix, id, token, expect, lease, deadOwner, to, msg, now, retention, code = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local tkey = prefix .. 'leader:token'
local cur = tonumber(redis.call('GET', tkey) or '0')
if tonumber(token) < cur then return {'stale-leader', ''} end
redis.call('SET', tkey, token)
local key = prefix .. 'job:' .. id
local st = redis.call('HGET', key, 'status')
if not st then return {'missing', ''} end
if st ~= expect or (redis.call('HGET', key, 'lease') or '') ~= lease then return {'changed', st} end
if deadOwner == '1' then
  local owner = redis.call('HGET', key, 'worker') or ''
  if owner_alive(prefix, key, owner) then return {'busy', st} end
end
redis.call('HSET', key, 'message', msg)
if code ~= '' then redis.call('HSET', key, 'exitCode', code) end
set_status(prefix, id, st, to, now, retention)
return {'ok', st}
`)

// Settlement is a leader's decision to end a job.
type Settlement struct {
	ID string
	// Seen is the status the leader read, and Lease the lease it read (nil
	// for none): the job is settled only if neither changed since.
	Seen  job.Status
	Lease *job.Lease
	// OwnerGone settles only while the job's worker has no heartbeat.
	OwnerGone bool
	To        job.Status
	Message   string
	ExitCode  *int
}

// Settle ends a job on behalf of the leader holding token. It fails with
// ErrStaleLeader when a newer leader has written, ErrNotFound when the job
// has no record, and *RefusedError when the job changed since the leader
// read it (or its owner came back): the leader must read it again.
func (s *Store) Settle(ctx context.Context, token uint64, d Settlement) error {
	if !job.CanTransition(d.Seen, d.To) {
		return &RefusedError{ID: d.ID, Current: d.Seen, Proposed: d.To}
	}
	dead, code := "0", ""
	if d.OwnerGone {
		dead = "1"
	}
	if d.ExitCode != nil {
		code = strconv.Itoa(*d.ExitCode)
	}
	res, err := settleScript.Run(ctx, s.rdb, nil, s.k.prefix, d.ID, strconv.FormatUint(token, 10), string(d.Seen),
		leaseArg(d.Lease), dead, string(d.To), d.Message, s.nowMicros(), s.retentionSecs(), code).StringSlice()
	if err != nil {
		return fmt.Errorf("settle job %s as %s: %w", d.ID, d.To, err)
	}
	switch res[0] {
	case "ok":
		return nil
	case "stale-leader":
		return fmt.Errorf("settle job %s: %w", d.ID, ErrStaleLeader)
	case "missing":
		return fmt.Errorf("job %s: %w", d.ID, ErrNotFound)
	default:
		return &RefusedError{ID: d.ID, Current: job.Status(res[1]), Proposed: d.To}
	}
}

// Live is the part of a job's record the reaper looks at.
type Live struct {
	ID      string
	Status  job.Status
	Worker  string
	Lease   *job.Lease
	Attempt int
	Cluster string
	Created time.Time
	Updated time.Time
}

var liveFields = []string{"status", "worker", "lease", "attempt", "cluster", "created", "updated"}

// ScanActive calls fn with the unfinished jobs (ACCEPTED to RUNNING), a batch
// at a time, until fn returns an error or all were seen. A job may be seen
// twice, or not at all if it was added during the scan: the scan is for
// periodic repairs, not for an exact count.
func (s *Store) ScanActive(ctx context.Context, batch int, fn func([]Live) error) error {
	if batch <= 0 {
		batch = 500
	}
	var cursor uint64
	var gone []any // pruned after the scan, which must not change the set it walks
	defer func() {
		if len(gone) > 0 {
			s.rdb.SRem(context.WithoutCancel(ctx), s.k.active(), gone...)
		}
	}()
	for {
		ids, next, err := s.rdb.SScan(ctx, s.k.active(), cursor, "", int64(batch)).Result()
		if err != nil {
			return fmt.Errorf("scan active jobs: %w", err)
		}
		if len(ids) > 0 {
			live, g, err := s.live(ctx, ids)
			if err != nil {
				return err
			}
			gone = append(gone, g...)
			if err := fn(live); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// live reads the jobs ids, and returns those without a record apart.
func (s *Store) live(ctx context.Context, ids []string) ([]Live, []any, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.k.job(id), liveFields...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read active jobs: %w", err)
	}
	out := make([]Live, 0, len(ids))
	var gone []any
	for i, c := range cmds {
		v := c.Val()
		str := func(k int) string {
			if k < len(v) {
				if s, ok := v[k].(string); ok {
					return s
				}
			}
			return ""
		}
		if str(0) == "" { // expired or deleted: the set is pruned lazily
			gone = append(gone, ids[i])
			continue
		}
		l := Live{ID: ids[i], Status: job.Status(str(0)), Worker: str(1), Lease: parseLease(str(2)),
			Attempt: atoi(str(3)), Cluster: str(4)}
		if t := micros(str(5)); t != nil {
			l.Created = *t
		}
		if t := micros(str(6)); t != nil {
			l.Updated = *t
		}
		out = append(out, l)
	}
	return out, gone, nil
}

// LiveWorkers returns the ids of the workers with a live heartbeat.
func (s *Store) LiveWorkers(ctx context.Context) (map[string]bool, error) {
	ids, err := s.rdb.ZRange(ctx, s.k.workers(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	// Whether each heartbeat is there is all the reaper needs: asking that
	// spares reading and decoding every heartbeat (docs/performance.md).
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Exists(ctx, s.k.worker(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("list live workers: %w", err)
	}
	for i, c := range cmds {
		if c.Val() > 0 {
			out[ids[i]] = true
		}
	}
	return out, nil
}

func parseLease(s string) *job.Lease {
	seq, del, ok := strings.Cut(s, ".")
	if !ok {
		return nil
	}
	a, err1 := strconv.ParseUint(seq, 10, 64)
	b, err2 := strconv.ParseUint(del, 10, 64)
	if err1 != nil || err2 != nil {
		return nil
	}
	return &job.Lease{Seq: a, Delivery: b}
}

// ArchivedJob reads the final record of a job from the archive: what is
// left of a finished job once Redis expired or lost its record. It fails with
// ErrNotFound when the archive has none.
func ArchivedJob(ctx context.Context, a Archive, id string) (*job.Job, error) {
	if a == nil {
		return nil, fmt.Errorf("job %s: no archive: %w", id, ErrNotFound)
	}
	if err := job.ValidateID("id", id); err != nil {
		return nil, err
	}
	obj, err := a.Open(ctx, RecordKey(id))
	if errors.Is(err, ErrNoObject) {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read archived job %s: %w", id, err)
	}
	defer obj.Close()
	var j job.Job
	if err := json.NewDecoder(obj).Decode(&j); err != nil {
		return nil, fmt.Errorf("archived job %s: bad record: %w", id, err)
	}
	if j.ID != id {
		return nil, fmt.Errorf("archived job %s: the record is of job %q", id, j.ID)
	}
	return &j, nil
}

// LeaseOf returns the status of job id and the lease that owns it (nil when
// none does). It fails with ErrNotFound when the job has no record.
func (s *Store) LeaseOf(ctx context.Context, id string) (job.Status, *job.Lease, error) {
	v, err := s.rdb.HMGet(ctx, s.k.job(id), "status", "lease").Result()
	if err != nil {
		return "", nil, fmt.Errorf("read lease of job %s: %w", id, err)
	}
	st, _ := v[0].(string)
	if st == "" {
		return "", nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	l, _ := v[1].(string)
	return job.Status(st), parseLease(l), nil
}
