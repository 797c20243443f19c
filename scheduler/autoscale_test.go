package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/scheduler/scale"
	"github.com/jinn-fleet/jinn/store"
)

// fakeProvider keeps a list of instances and records the calls it gets.
type fakeProvider struct {
	mu        sync.Mutex
	instances []scale.Instance
	calls     []string
	failSet   error
	next      int
}

func (p *fakeProvider) Name() string { return "fake" }

func (p *fakeProvider) SetDesired(_ context.Context, pool string, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, fmt.Sprintf("set %s %d", pool, n))
	if p.failSet != nil {
		return p.failSet
	}
	live := 0
	for _, in := range p.instances {
		if in.Live {
			live++
		}
	}
	for ; live < n; live++ {
		p.next++
		p.instances = append(p.instances, scale.Instance{ID: fmt.Sprintf("new-%d", p.next), State: "running", Live: true})
	}
	return nil
}

func (p *fakeProvider) Remove(_ context.Context, pool, worker string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, fmt.Sprintf("remove %s %s", pool, worker))
	p.instances = slices.DeleteFunc(p.instances, func(in scale.Instance) bool { return in.ID == worker })
	return nil
}

func (p *fakeProvider) List(context.Context, string) ([]scale.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.instances), nil
}

// took returns the calls since the last took.
func (p *fakeProvider) took() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

type scaleFixture struct {
	t        *testing.T
	ctx      context.Context
	clock    *fakeClock
	broker   *broker.Broker
	rdb      *redis.Client
	store    *store.Store
	provider *fakeProvider
	as       *scheduler.Autoscaler
	drains   chan string
	token    uint64
}

var scalePolicy = job.ScalePolicy{
	Min: 1, Max: 3, Window: time.Minute, DownWindow: 5 * time.Minute,
	UpCooldown: 2 * time.Minute, DownCooldown: 2 * time.Minute, WarmUp: time.Minute, Gap: time.Minute,
}

func newScaleFixture(t *testing.T) *scaleFixture {
	ns := startNATS(t)
	b := connect(t, ns.ClientURL())
	clk := &fakeClock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	rdb := redistest.Mini(t)
	st := store.New(rdb, store.Config{Now: clk.Now})
	prov := &fakeProvider{}
	as, err := scheduler.NewAutoscaler(scheduler.AutoscaleConfig{
		Pools: []scheduler.AutoscalePool{{Name: "default", Policy: scalePolicy, Provider: prov, Clusters: []string{"local"}}},
		Now:   clk.Now, CallTimeout: 2 * time.Second,
	}, b, st, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	return &scaleFixture{t: t, ctx: context.Background(), clock: clk, broker: b, rdb: rdb, store: st, provider: prov, as: as,
		drains: make(chan string, 10), token: 1}
}

// worker publishes a heartbeat of an ACTIVE worker of pool default serving
// cluster local, started long ago, and answers its drain requests.
func (f *scaleFixture) worker(id string, reserved int) {
	f.t.Helper()
	f.beat(job.Worker{ID: id, Pool: "default", Clusters: []string{"local"}, Allowance: 1000, Reserved: reserved,
		State: job.WorkerActive, Started: f.clock.Now().Add(-time.Hour)})
	sub, err := f.broker.Serve(id, broker.VerbDrain, func(broker.ControlRequest) broker.ControlReply {
		f.drains <- id
		return broker.ControlReply{}
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = sub.Unsubscribe() })
}

func (f *scaleFixture) beat(w job.Worker) {
	f.t.Helper()
	if err := f.store.Heartbeat(f.ctx, &w, time.Hour); err != nil {
		f.t.Fatal(err)
	}
}

func (f *scaleFixture) tick() error {
	f.t.Helper()
	return f.as.Tick(f.ctx, scheduler.Lead{Token: f.token})
}

func (f *scaleFixture) mustTick() {
	f.t.Helper()
	if err := f.tick(); err != nil {
		f.t.Fatalf("tick: %v", err)
	}
}

// tickFor ticks every 10 seconds of the driven clock for d.
func (f *scaleFixture) tickFor(d time.Duration) {
	f.t.Helper()
	for end := f.clock.Now().Add(d); f.clock.Now().Before(end); {
		f.clock.Advance(10 * time.Second)
		f.mustTick()
	}
}

func (f *scaleFixture) pool() *job.Pool {
	f.t.Helper()
	p, err := f.store.Pool(f.ctx, "default", 50)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *scaleFixture) wantCalls(want ...string) {
	f.t.Helper()
	if got := f.provider.took(); !slices.Equal(got, want) {
		f.t.Fatalf("provider calls %q, want %q", got, want)
	}
}

// queue puts a job of mem MiB in the QUEUED index and counts of cluster local.
func (f *scaleFixture) queue(id string, mem int) {
	f.t.Helper()
	req := &job.Request{ID: id, Command: []string{"type:exec"}, Args: []string{"true"}}
	if _, err := f.store.Record(f.ctx, &job.Job{ID: id, Request: req}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.Transition(f.ctx, id, job.Queued, nil, store.Update{Cluster: "local", Memory: mem}); err != nil {
		f.t.Fatal(err)
	}
}

// The pool grows after a whole window of pressure and the size asked is
// absolute; a worker still starting is not asked for twice.
func TestAutoscalerGrows(t *testing.T) {
	f := newScaleFixture(t)
	f.provider.instances = []scale.Instance{{ID: "w1", State: "running", Live: true}}
	f.worker("w1", 900)
	f.queue("j1", 800)

	f.mustTick() // a new leader says the size once
	f.wantCalls("set default 1")
	f.clock.Advance(30 * time.Second)
	f.mustTick()
	f.wantCalls()
	if p := f.pool(); p.Last.Rule != job.RuleWatch || p.Desired != 1 {
		t.Fatalf("half way through the window: %+v", p.Last)
	}
	f.clock.Advance(30 * time.Second)
	f.mustTick()
	f.wantCalls("set default 2")
	p := f.pool()
	if p.Desired != 2 || p.Last.Action != job.ScaleUp || p.Last.Rule != job.RuleWaiting {
		t.Fatalf("after the window: desired %d, last %+v", p.Desired, p.Last)
	}
	in := p.Last.Inputs
	if in.Active != 1 || in.Reserved != 900 || in.WaitingMemory != 800 || in.WaitingJobs != 1 || in.Unplaced != 1 {
		t.Fatalf("inputs %+v", in)
	}
	if len(p.Decisions) == 0 || p.Decisions[0].Action != job.ScaleUp || !strings.Contains(p.Decisions[0].Reason, "1 → 2 workers") {
		t.Fatalf("decisions %+v", p.Decisions)
	}

	// The new worker has no heartbeat yet: it is starting, nothing more is asked.
	for range 20 {
		f.clock.Advance(10 * time.Second)
		f.mustTick()
	}
	f.wantCalls()
	if p := f.pool(); p.Starting != 1 || p.Desired != 2 {
		t.Fatalf("while the worker starts: starting %d desired %d (%s)", p.Starting, p.Desired, p.Last.Reason)
	}
}

// An idle pool drains its emptiest worker, removes it once it has exited,
// and does not go below the minimum.
func TestAutoscalerShrinks(t *testing.T) {
	f := newScaleFixture(t)
	f.provider.instances = []scale.Instance{{ID: "w1", Live: true}, {ID: "w2", Live: true}}
	f.worker("w1", 100)
	f.worker("w2", 0)
	f.mustTick()
	f.wantCalls("set default 2")
	f.tickFor(5 * time.Minute)
	select {
	case id := <-f.drains:
		if id != "w2" {
			t.Fatalf("drained %s, want the emptiest, w2", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no drain request")
	}
	p := f.pool()
	if p.Desired != 1 || !slices.Equal(p.Draining, []string{"w2"}) || p.Last.Action != job.ScaleDown {
		t.Fatalf("after the down window: desired %d draining %v last %+v", p.Desired, p.Draining, p.Last)
	}
	f.wantCalls()

	// Still running its jobs: it stays, and is not asked again (its
	// heartbeat says DRAINING).
	f.beat(job.Worker{ID: "w2", Pool: "default", Clusters: []string{"local"}, Allowance: 1000, State: job.WorkerDraining, Started: f.clock.Now().Add(-time.Hour)})
	f.clock.Advance(10 * time.Second)
	f.mustTick()
	f.wantCalls()
	if len(f.drains) != 0 {
		t.Fatal("a draining worker was asked again")
	}
	// It has exited: the provider removes it.
	if err := f.store.RemoveWorker(f.ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Second)
	f.mustTick()
	f.wantCalls("remove default w2")
	if p := f.pool(); len(p.Draining) != 0 || p.Size != 1 || p.Desired != 1 {
		t.Fatalf("after removal: %+v", p)
	}
	// At the minimum it stays.
	for range 60 {
		f.clock.Advance(10 * time.Second)
		f.mustTick()
	}
	f.wantCalls()
	if p := f.pool(); p.Last.Rule != job.RuleAtMin {
		t.Fatalf("at the minimum: %+v", p.Last)
	}
}

// A drain request that went unanswered is asked again; a worker that died
// before draining is removed all the same.
func TestAutoscalerRetriesDrain(t *testing.T) {
	f := newScaleFixture(t)
	f.provider.instances = []scale.Instance{{ID: "w1", Live: true}, {ID: "w2", Live: true}}
	f.worker("w1", 100)
	// w2 heartbeats but nothing answers its requests.
	f.beat(job.Worker{ID: "w2", Pool: "default", Clusters: []string{"local"}, Allowance: 1000, State: job.WorkerActive, Started: f.clock.Now().Add(-time.Hour)})
	f.mustTick()
	f.tickFor(5*time.Minute - 10*time.Second)
	f.clock.Advance(10 * time.Second)
	err := f.tick()
	if err == nil || !strings.Contains(err.Error(), "drain worker w2") {
		t.Fatalf("tick with an unanswered drain: %v", err)
	}
	p := f.pool()
	if !slices.Equal(p.Draining, []string{"w2"}) || !strings.Contains(p.Last.Error, "drain worker w2") || p.Decisions[0].Error == "" {
		t.Fatalf("the failure is not recorded: %+v", p.Last)
	}
	f.clock.Advance(10 * time.Second)
	if err := f.tick(); err == nil || !strings.Contains(err.Error(), "drain worker w2") {
		t.Fatalf("next tick: %v, want the drain asked again", err)
	}
	if err := f.store.RemoveWorker(f.ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	f.provider.took()
	f.clock.Advance(10 * time.Second)
	f.mustTick()
	f.wantCalls("remove default w2")
}

// A leader whose token is older than the newest one's writes nothing and
// asks the provider for nothing.
func TestAutoscalerFenced(t *testing.T) {
	f := newScaleFixture(t)
	f.worker("w1", 900)
	if err := f.store.Lead(f.ctx, 5); err != nil {
		t.Fatal(err)
	}
	f.token = 3
	if err := f.tick(); !errors.Is(err, store.ErrStaleLeader) {
		t.Fatalf("tick of an old leader: %v, want ErrStaleLeader", err)
	}
	f.wantCalls()
	if _, err := f.store.Pool(f.ctx, "default", 0); !errors.Is(err, store.ErrNoPool) {
		t.Fatalf("an old leader wrote the pool: %v", err)
	}
	f.token = 5
	f.mustTick()
	f.wantCalls("set default 1")
}

// A provider that fails is asked again at the next tick, and the failure is
// in the pool's record.
func TestAutoscalerProviderFails(t *testing.T) {
	f := newScaleFixture(t)
	f.provider.failSet = errors.New("quota exceeded")
	if err := f.tick(); err == nil || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("tick: %v", err)
	}
	f.wantCalls("set default 1")
	if p := f.pool(); p.Last.Rule != job.RuleMin || !strings.Contains(p.Last.Error, "ask fake for 1 workers: quota exceeded") {
		t.Fatalf("record: %+v", p.Last)
	}
	f.provider.failSet = nil
	f.clock.Advance(10 * time.Second)
	f.mustTick()
	f.wantCalls("set default 1")
	f.clock.Advance(10 * time.Second)
	f.mustTick()
	f.wantCalls() // the worker is starting
}

// Waiting counts that disagree with the QUEUED index for three ticks are
// rebuilt.
func TestAutoscalerRebuildsWaiting(t *testing.T) {
	f := newScaleFixture(t)
	f.worker("w1", 0)
	f.queue("j1", 300)
	f.queue("j2", 200)
	f.rdb.Del(f.ctx, "jinn:waiting:memory", "jinn:waiting:jobs")
	for range 3 {
		f.mustTick()
		f.clock.Advance(10 * time.Second)
	}
	if f.as.Recounts() != 1 {
		t.Fatalf("recounts %d, want 1", f.as.Recounts())
	}
	f.mustTick()
	if in := f.pool().Last.Inputs; in.WaitingMemory != 500 || in.WaitingJobs != 2 {
		t.Fatalf("waiting after the rebuild: %+v", in)
	}
}
