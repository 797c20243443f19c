package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// testPrefix is the key prefix of the conformance tests; one test checks the
// default "jinn:". The key names below mirror keys.go: the suite reads raw
// keys only where the contract is about them (TTLs, the active set, pruning).
const testPrefix = "test:"

func jobKey(id string) string    { return testPrefix + "job:" + id }
func workerKey(id string) string { return testPrefix + "worker:" + id }
func activeKey() string          { return testPrefix + "jobs:active" }
func allKey() string             { return testPrefix + "jobs:all" }

// clock is a clock the test drives.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fixture is a store over one backend with a driven clock.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	rdb   *redis.Client
	s     *store.Store
	clock *clock
	cfg   store.Config
}

const retention = time.Hour

func newFixture(t *testing.T, rdb *redis.Client) *fixture {
	return newFixtureWith(t, rdb, store.Config{Prefix: testPrefix, Retention: retention})
}

func newFixtureWith(t *testing.T, rdb *redis.Client, cfg store.Config) *fixture {
	c := newClock()
	cfg.Now = c.Now
	return &fixture{t: t, ctx: context.Background(), rdb: rdb, s: store.New(rdb, cfg), clock: c, cfg: cfg}
}

func newRequest(id, user string) *job.Request {
	return &job.Request{ID: id, User: user, Command: []string{"type:exec"}, Args: []string{"echo", id}}
}

// record creates job id of user one millisecond after the previous one, so
// that every job has its own creation time.
func (f *fixture) record(id, user string) *job.Job {
	f.t.Helper()
	return f.recordReq(newRequest(id, user))
}

func (f *fixture) recordReq(req *job.Request) *job.Job {
	f.t.Helper()
	f.clock.Advance(time.Millisecond)
	j := &job.Job{ID: req.ID, Name: req.Name, User: req.User, Memory: req.Memory, Request: req}
	created, err := f.s.Record(f.ctx, j)
	if err != nil || !created {
		f.t.Fatalf("Record(%s) = %v, %v; want created", req.ID, created, err)
	}
	return j
}

// moveTo drives job id from ACCEPTED to st with unfenced transitions along the
// shortest path job.CanTransition allows.
func (f *fixture) moveTo(id string, st job.Status) {
	f.t.Helper()
	for _, step := range pathTo(st) {
		if err := f.s.Transition(f.ctx, id, step, nil, store.Update{}); err != nil {
			f.t.Fatalf("move %s to %s (on the way to %s): %v", id, step, st, err)
		}
	}
	if got := f.get(id).Status; got != st {
		f.t.Fatalf("job %s is %s after moving it to %s", id, got, st)
	}
}

// pathTo is the shortest list of statuses from ACCEPTED to st, ACCEPTED
// itself excluded.
func pathTo(st job.Status) []job.Status {
	prev := map[job.Status]job.Status{job.Accepted: ""}
	queue := []job.Status{job.Accepted}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == st {
			break
		}
		for _, next := range job.Statuses {
			if _, seen := prev[next]; !seen && job.CanTransition(cur, next) {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	var path []job.Status
	for s := st; s != job.Accepted; s = prev[s] {
		if _, ok := prev[s]; !ok {
			panic("no path from ACCEPTED to " + string(st))
		}
		path = append([]job.Status{s}, path...)
	}
	return path
}

func (f *fixture) get(id string) *job.Job {
	f.t.Helper()
	j, err := f.s.Get(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Get(%s): %v", id, err)
	}
	return j
}

// raw is the job's hash as stored.
func (f *fixture) raw(id string) map[string]string {
	f.t.Helper()
	h, err := f.rdb.HGetAll(f.ctx, jobKey(id)).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

func (f *fixture) active(id string) bool {
	f.t.Helper()
	ok, err := f.rdb.SIsMember(f.ctx, activeKey(), id).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	return ok
}

func (f *fixture) claim(id, worker string, lease job.Lease) (store.ClaimOutcome, int) {
	f.t.Helper()
	out, attempt, err := f.s.Claim(f.ctx, id, worker, lease)
	if err != nil {
		f.t.Fatalf("Claim(%s, %s): %v", id, worker, err)
	}
	return out, attempt
}

func (f *fixture) transition(id string, to job.Status, lease *job.Lease, u store.Update) {
	f.t.Helper()
	if err := f.s.Transition(f.ctx, id, to, lease, u); err != nil {
		f.t.Fatalf("Transition(%s to %s): %v", id, to, err)
	}
}

// heartbeat publishes a live ACTIVE worker whose heartbeat lasts ttl.
func (f *fixture) heartbeat(id string, ttl time.Duration) {
	f.t.Helper()
	w := &job.Worker{ID: id, Pool: "default", Host: "host-" + id, Clusters: []string{"local"},
		Allowance: 1024, State: job.WorkerActive, Started: f.clock.Now(), Heartbeat: f.clock.Now()}
	if err := f.s.Heartbeat(f.ctx, w, ttl); err != nil {
		f.t.Fatalf("Heartbeat(%s): %v", id, err)
	}
}

// checkTerminal checks what every terminal status write leaves behind: the
// finish time, the expiry after the retention, and no place in the active set.
func (f *fixture) checkTerminal(id string) {
	f.t.Helper()
	j := f.get(id)
	if !j.Status.Terminal() {
		f.t.Fatalf("job %s is %s, want a terminal status", id, j.Status)
	}
	if j.Finished == nil || !j.Finished.Equal(f.clock.Now()) {
		f.t.Errorf("job %s finished = %v, want %v", id, j.Finished, f.clock.Now())
	}
	ttl, err := f.rdb.TTL(f.ctx, jobKey(id)).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	want := f.cfg.Retention
	if ttl > want || ttl < want-5*time.Second {
		f.t.Errorf("job %s TTL = %v, want the retention %v", id, ttl, want)
	}
	if f.active(id) {
		f.t.Errorf("finished job %s is still in the active set", id)
	}
}

func intp(n int) *int { return &n }
