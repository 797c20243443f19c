package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	return s.RecordWithin(ctx, j, 0)
}

// ActiveLimitError refuses a new job of a user who has Limit unfinished
// jobs already.
type ActiveLimitError struct {
	User   string
	Limit  int
	Active int
}

func (e *ActiveLimitError) Error() string {
	return fmt.Sprintf("user %s has %d unfinished jobs and may have at most %d; submit again once some have finished (or kill some)", e.User, e.Active, e.Limit)
}

// RecordWithin is Record for a user who may have at most limit unfinished
// jobs (0: no limit; a job without a user is never limited). A new job over
// the limit is not recorded: the error is an *ActiveLimitError. A job whose
// id exists is returned as by Record, whatever the count.
func (s *Store) RecordWithin(ctx context.Context, j *job.Job, limit int) (created bool, err error) {
	req, err := json.Marshal(j.Request)
	if err != nil {
		return false, fmt.Errorf("encode request: %w", err)
	}
	args := []any{s.k.prefix, j.ID, j.Request.Fingerprint(), s.nowMicros(), j.User, strconv.Itoa(max(limit, 0)),
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
	case "limited":
		return false, &ActiveLimitError{User: j.User, Limit: limit, Active: atoi(res[1])}
	default:
		return false, fmt.Errorf("job %s: %w", j.ID, ErrConflict)
	}
}

// ActiveJobs is how many unfinished jobs (ACCEPTED to RUNNING) user has.
func (s *Store) ActiveJobs(ctx context.Context, user string) (int, error) {
	n, err := s.rdb.SCard(ctx, s.k.activeByUser(user)).Result()
	if err != nil {
		return 0, fmt.Errorf("count active jobs of %s: %w", user, err)
	}
	return int(n), nil
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
	// The archive of the job's files: its status, location and, when it
	// failed, why.
	ArchiveStatus   job.ArchiveStatus
	ArchiveLocation string
	ArchiveMessage  string
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
	add("archive", string(u.ArchiveStatus))
	add("archiveLocation", u.ArchiveLocation)
	add("archiveMessage", u.ArchiveMessage)
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
	return s.ClaimAs(ctx, id, worker, "", lease)
}

// ClaimAs is Claim by one run (incarnation) of a worker: the job is owned by
// that run only, so a worker restarted with the same id does not keep its
// earlier run's jobs busy; they get a new attempt.
func (s *Store) ClaimAs(ctx context.Context, id, worker, incarnation string, lease job.Lease) (ClaimOutcome, int, error) {
	res, err := claimScript.Run(ctx, s.rdb, nil, s.k.prefix, id, worker, leaseArg(&lease), s.nowMicros(), s.retentionSecs(), incarnation).Slice()
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
	pipe.Del(ctx, s.k.job(id), s.k.jobHistory(id))
	pipe.ZRem(ctx, s.k.all(), id)
	pipe.ZRem(ctx, s.k.byStatus(j.Status), id)
	pipe.SRem(ctx, s.k.active(), id)
	if j.User != "" {
		pipe.ZRem(ctx, s.k.byUser(j.User), id)
		pipe.SRem(ctx, s.k.activeByUser(j.User), id)
	}
	if j.Cluster != "" {
		pipe.ZRem(ctx, s.k.byCluster(j.Cluster), id)
	}
	if j.Status == job.Queued && j.Cluster != "" {
		pipe.HIncrBy(ctx, s.k.waitingMemory(), j.Cluster, -int64(j.Memory))
		pipe.HIncrBy(ctx, s.k.waitingJobs(), j.Cluster, -1)
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

		ArchiveStatus:   job.ArchiveOf(job.Status(h["status"]), job.ArchiveStatus(h["archive"])),
		ArchiveLocation: h["archiveLocation"],
		ArchiveMessage:  h["archiveMessage"],
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
	Tag     string // one of the request's tags
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
	pos, err := parseCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	var out []job.Job
	for len(out) < f.Limit {
		batch := f.Limit - len(out)
		zs, err := s.after(ctx, index, pos, batch)
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
			if (f.User == "" || j.User == f.User) && (f.Status == "" || j.Status == f.Status) && (f.Cluster == "" || j.Cluster == f.Cluster) && f.hasTag(j) {
				out = append(out, *j)
			}
		}
		if len(gone) > 0 { // expired jobs: prune the index lazily
			s.rdb.ZRem(ctx, index, gone...)
		}
		last := zs[len(zs)-1]
		pos = cursor{score: int64(last.Score), id: last.Member.(string)}
		if len(zs) < batch {
			return out, "", nil
		}
	}
	return out, pos.String(), nil
}

// hasTag reports whether the job's request carries the filter's tag. No
// index holds tags: a tag filter walks the most selective other index.
func (f Filter) hasTag(j *job.Job) bool {
	return f.Tag == "" || (j.Request != nil && slices.Contains(j.Request.Tags, f.Tag))
}

// HistoryKept is how many status changes a job's history keeps (the last
// ones); push_history in scripts.go trims to it.
const HistoryKept = 100

// History returns the status changes of job id, oldest first: every change
// written by the scripts, with the job's attempt, worker and message at that
// moment. It is empty for a job whose record has expired.
func (s *Store) History(ctx context.Context, id string) ([]job.Event, error) {
	raw, err := s.rdb.LRange(ctx, s.k.jobHistory(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read history of job %s: %w", id, err)
	}
	out := make([]job.Event, 0, len(raw))
	for _, r := range raw {
		var e struct {
			Status  job.Status `json:"status"`
			Time    string     `json:"time"`
			Attempt int        `json:"attempt"`
			Worker  string     `json:"worker"`
			Message string     `json:"message"`
		}
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return nil, fmt.Errorf("history of job %s: entry %q: %w", id, r, err)
		}
		ev := job.Event{ID: id, Status: e.Status, Attempt: e.Attempt, Worker: e.Worker, Message: e.Message}
		if t := micros(e.Time); t != nil {
			ev.Time = *t
		}
		out = append(out, ev)
	}
	return out, nil
}

// cursor is a place in an index walked newest first: the score (creation
// time in µs) and id of the last job seen. Jobs created in the same
// microsecond share a score, and Redis orders them by id, so the score alone
// would skip some of them at a page boundary. An empty id stands after every
// job of that score (a cursor of an earlier version: the score alone); the
// zero cursor is the start.
type cursor struct {
	score int64
	id    string
}

func (c cursor) String() string { return strconv.FormatInt(c.score, 10) + "." + c.id }

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	score, id, dotted := strings.Cut(s, ".")
	n, err := strconv.ParseInt(score, 10, 64)
	if err != nil || (dotted && id == "") {
		return cursor{}, fmt.Errorf("cursor %q: not a cursor from this API", s)
	}
	return cursor{score: n, id: id}, nil
}

// after returns up to n entries of index that come after pos, newest first
// (by score, then by id, both descending, as ZREVRANGEBYSCORE orders them).
func (s *Store) after(ctx context.Context, index string, pos cursor, n int) ([]redis.Z, error) {
	top := "+inf"
	var out []redis.Z
	if pos != (cursor{}) {
		score := strconv.FormatInt(pos.score, 10)
		top = "(" + score
		if pos.id != "" {
			ties, err := s.rdb.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{Max: score, Min: score}).Result()
			if err != nil {
				return nil, err
			}
			for _, z := range ties {
				if z.Member.(string) < pos.id && len(out) < n {
					out = append(out, z)
				}
			}
		}
	}
	if len(out) == n {
		return out, nil
	}
	more, err := s.rdb.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{Max: top, Min: "-inf", Count: int64(n - len(out))}).Result()
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
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
