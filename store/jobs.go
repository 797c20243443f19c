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

// Errors of job operations. Callers test them with errors.Is.
var (
	ErrNotFound = errors.New("job not found")
	ErrConflict = errors.New("a different job with this id exists")
	// ErrStale means the write came from an attempt that no longer owns the job.
	ErrStale = errors.New("stale lease: another attempt owns the job")
	// ErrKillRequested means the job must end as KILLED instead of progressing.
	ErrKillRequested = errors.New("kill requested")
)

// RefusedError is a transition the status machine does not allow from the
// job's current status.
type RefusedError struct {
	ID       string
	Current  job.Status
	Proposed job.Status
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("job %s is %s and cannot become %s", e.ID, e.Current, e.Proposed)
}

// Config of the Redis store.
type Config struct {
	// Prefix of every key. Default "jinn:".
	Prefix string
	// Retention is how long a finished job stays in Redis. Default 7 days;
	// the archive keeps it after that.
	Retention time.Duration
	// Now is the clock; tests drive it. Default time.Now.
	Now func() time.Time
}

// Store is the live view of jobs and workers in Redis.
type Store struct {
	rdb       redis.UniversalClient
	k         keys
	retention time.Duration
	now       func() time.Time
}

// New returns a store over a Redis client.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = "jinn:"
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{rdb: rdb, k: keys{cfg.Prefix}, retention: cfg.Retention, now: cfg.Now}
}

// Redis returns the client, for health checks.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

func (s *Store) nowMicros() string { return strconv.FormatInt(s.now().UnixMicro(), 10) }

func (s *Store) retentionSecs() string {
	return strconv.FormatInt(int64(s.retention/time.Second), 10)
}

// Record creates a job in ACCEPTED. When a job with the same id exists it is
// returned with created=false if its request is the same, or ErrConflict.
func (s *Store) Record(ctx context.Context, j *job.Job) (created bool, err error) {
	req, err := json.Marshal(j.Request)
	if err != nil {
		return false, fmt.Errorf("encode request: %w", err)
	}
	args := []any{s.k.prefix, j.ID, j.Request.Fingerprint(), s.nowMicros(), j.User,
		"name", j.Name, "user", j.User, "memory", itoa(j.Memory),
		"retries", strconv.Itoa(j.Request.RetryLimit()), "request", string(req)}
	res, err := recordScript.Run(ctx, s.rdb, nil, args...).StringSlice()
	if err != nil {
		return false, fmt.Errorf("record job %s: %w", j.ID, err)
	}
	switch res[0] {
	case "created":
		return true, nil
	case "exists":
		return false, nil
	default:
		return false, fmt.Errorf("job %s: %w", j.ID, ErrConflict)
	}
}

// Update is what a transition writes besides the status. Zero fields are left
// alone.
type Update struct {
	Message  string
	Cluster  string
	Command  string
	Memory   int
	ExitCode *int
	Peak     int // measured peak memory in MiB
}

func (u Update) pairs() []any {
	var p []any
	add := func(f, v string) {
		if v != "" {
			p = append(p, f, v)
		}
	}
	add("message", u.Message)
	add("cluster", u.Cluster)
	add("command", u.Command)
	add("memory", itoa(u.Memory))
	add("peak", itoa(u.Peak))
	if u.ExitCode != nil {
		add("exitCode", strconv.Itoa(*u.ExitCode))
	}
	return p
}

// Transition moves job id to status to. With a lease, the write is refused
// with ErrStale unless that lease still owns the job. Moving to INIT or
// RUNNING a job with a kill request fails with ErrKillRequested.
func (s *Store) Transition(ctx context.Context, id string, to job.Status, lease *job.Lease, u Update) error {
	args := append([]any{s.k.prefix, id, string(to), sourcesArg(to), leaseArg(lease), s.nowMicros(), s.retentionSecs()}, u.pairs()...)
	res, err := transitionScript.Run(ctx, s.rdb, nil, args...).StringSlice()
	if err != nil {
		return fmt.Errorf("job %s to %s: %w", id, to, err)
	}
	switch res[0] {
	case "ok":
		return nil
	case "missing":
		return fmt.Errorf("job %s: %w", id, ErrNotFound)
	case "stale":
		return fmt.Errorf("job %s to %s: %w", id, to, ErrStale)
	case "killed":
		return fmt.Errorf("job %s: %w", id, ErrKillRequested)
	default:
		return &RefusedError{ID: id, Current: job.Status(res[1]), Proposed: to}
	}
}

// ClaimOutcome is the result of a claim; see claimScript.
type ClaimOutcome string

const (
	ClaimOK       ClaimOutcome = "claimed"
	ClaimMissing  ClaimOutcome = "missing"
	ClaimTerminal ClaimOutcome = "terminal"
	ClaimKilled   ClaimOutcome = "killed"
	ClaimBusy     ClaimOutcome = "busy"
	ClaimLost     ClaimOutcome = "lost"
)

// Claim makes worker the owner of a new attempt at job id under lease.
func (s *Store) Claim(ctx context.Context, id, worker string, lease job.Lease) (ClaimOutcome, int, error) {
	res, err := claimScript.Run(ctx, s.rdb, nil, s.k.prefix, id, worker, leaseArg(&lease), s.nowMicros(), s.retentionSecs()).Slice()
	if err != nil {
		return "", 0, fmt.Errorf("claim job %s: %w", id, err)
	}
	attempt, _ := res[2].(int64)
	return ClaimOutcome(res[0].(string)), int(attempt), nil
}

// KillOutcome is the result of a kill request; see killScript.
type KillOutcome string

const (
	KillMissing  KillOutcome = "missing"
	KillTerminal KillOutcome = "terminal"
	KillDone     KillOutcome = "killed" // it had not started and is now KILLED
	KillSignal   KillOutcome = "signal" // its worker must be told
)

// Kill records a kill request. A job not yet claimed becomes KILLED at once;
// for a claimed one it returns the worker that must kill the process.
func (s *Store) Kill(ctx context.Context, id string) (KillOutcome, job.Status, string, error) {
	res, err := killScript.Run(ctx, s.rdb, nil, s.k.prefix, id, s.nowMicros(), s.retentionSecs()).StringSlice()
	if err != nil {
		return "", "", "", fmt.Errorf("kill job %s: %w", id, err)
	}
	return KillOutcome(res[0]), job.Status(res[1]), res[2], nil
}

// Delete removes a job that never reached a queue (its publish failed), so
// that the client may submit it again.
func (s *Store) Delete(ctx context.Context, id string) error {
	j, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, s.k.job(id))
	pipe.ZRem(ctx, s.k.all(), id)
	pipe.ZRem(ctx, s.k.byStatus(j.Status), id)
	pipe.SRem(ctx, s.k.active(), id)
	if j.User != "" {
		pipe.ZRem(ctx, s.k.byUser(j.User), id)
	}
	if j.Cluster != "" {
		pipe.ZRem(ctx, s.k.byCluster(j.Cluster), id)
	}
	_, err = pipe.Exec(ctx)
	return err
}

// Get reads one job.
func (s *Store) Get(ctx context.Context, id string) (*job.Job, error) {
	h, err := s.rdb.HGetAll(ctx, s.k.job(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return decodeJob(h), nil
}

func decodeJob(h map[string]string) *job.Job {
	j := &job.Job{
		ID:            h["id"],
		Name:          h["name"],
		User:          h["user"],
		Status:        job.Status(h["status"]),
		Message:       h["message"],
		Cluster:       h["cluster"],
		Command:       h["command"],
		Worker:        h["worker"],
		Attempt:       atoi(h["attempt"]),
		Memory:        atoi(h["memory"]),
		Peak:          atoi(h["peak"]),
		KillRequested: h["kill"] == "1",
		Created:       micros(h["created"]),
		Queued:        micros(h["queued"]),
		Started:       micros(h["started"]),
		Finished:      micros(h["finished"]),
	}
	if v, ok := h["exitCode"]; ok {
		c := atoi(v)
		j.ExitCode = &c
	}
	if r := h["request"]; r != "" {
		var req job.Request
		if json.Unmarshal([]byte(r), &req) == nil {
			j.Request = &req
		}
	}
	return j
}

// Filter selects jobs for List. Empty fields match everything.
type Filter struct {
	User    string
	Status  job.Status
	Cluster string
	Limit   int    // default 50, at most 1000
	Cursor  string // from a previous page
}

// List returns jobs matching f, newest first, and the cursor of the next page
// ("" at the end). It walks the most selective index and filters the rest.
func (s *Store) List(ctx context.Context, f Filter) ([]job.Job, string, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	index := s.k.all()
	switch {
	case f.Status != "":
		index = s.k.byStatus(f.Status)
	case f.User != "":
		index = s.k.byUser(f.User)
	case f.Cluster != "":
		index = s.k.byCluster(f.Cluster)
	}
	max := "+inf"
	if f.Cursor != "" {
		if _, err := strconv.ParseInt(f.Cursor, 10, 64); err != nil {
			return nil, "", fmt.Errorf("cursor %q: not a cursor from this API", f.Cursor)
		}
		max = "(" + f.Cursor
	}
	var out []job.Job
	for len(out) < f.Limit {
		batch := f.Limit - len(out)
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{Max: max, Min: "-inf", Count: int64(batch)}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("list jobs: %w", err)
		}
		if len(zs) == 0 {
			return out, "", nil
		}
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(zs))
		for i, z := range zs {
			cmds[i] = pipe.HGetAll(ctx, s.k.job(z.Member.(string)))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, "", fmt.Errorf("list jobs: %w", err)
		}
		var gone []any
		for i, c := range cmds {
			h := c.Val()
			if len(h) == 0 {
				gone = append(gone, zs[i].Member)
				continue
			}
			j := decodeJob(h)
			if (f.User == "" || j.User == f.User) && (f.Status == "" || j.Status == f.Status) && (f.Cluster == "" || j.Cluster == f.Cluster) {
				out = append(out, *j)
			}
		}
		if len(gone) > 0 { // expired jobs: prune the index lazily
			s.rdb.ZRem(ctx, index, gone...)
		}
		last := strconv.FormatInt(int64(zs[len(zs)-1].Score), 10)
		max = "(" + last
		if len(zs) < batch {
			return out, "", nil
		}
		if len(out) >= f.Limit {
			return out, last, nil
		}
	}
	return out, "", nil
}

func leaseArg(l *job.Lease) string {
	if l == nil {
		return ""
	}
	return strconv.FormatUint(l.Seq, 10) + "." + strconv.FormatUint(l.Delivery, 10)
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

func micros(s string) *time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return nil
	}
	t := time.UnixMicro(n).UTC()
	return &t
}
