package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

func TestLedgerFits(t *testing.T) {
	l := newLedger(1000)
	if !l.reserve("a", 600) || l.reserve("b", 500) || !l.reserve("c", 400) || l.reserve("d", 1) {
		t.Fatal("reserve must take exactly what fits in 1000 MiB")
	}
	if ok, _ := l.canFetch(); ok {
		t.Fatal("a full ledger must not fetch")
	}
	l.release(400)
	if ok, _ := l.canFetch(); !ok {
		t.Fatal("a ledger with 400 MiB free must fetch")
	}
	l.drain()
	if ok, _ := l.canFetch(); ok || l.reserve("e", 1) {
		t.Fatal("a draining ledger admits nothing")
	}
}

func TestLedgerHold(t *testing.T) {
	l := newLedger(1000)
	l.reserve("small-1", 300)
	l.reserve("small-2", 300)
	if l.hold("huge", 1001, time.Now()) {
		t.Fatal("held room for a job that can never fit")
	}
	if !l.hold("big", 900, time.Now()) || l.hold("other", 500, time.Now()) {
		t.Fatal("hold must keep room for one job at a time")
	}
	if ok, _ := l.canFetch(); ok {
		t.Fatal("while room is kept for 900 MiB, 400 MiB free must not fetch")
	}
	if l.reserve("small-3", 100) {
		t.Fatal("a small job was admitted into the room kept for the big one")
	}
	l.release(300)
	l.release(300)
	if ok, _ := l.canFetch(); !ok {
		t.Fatal("the held job fits: fetch")
	}
	if !l.reserve("small-4", 100) {
		t.Fatal("a small job that fits beside the held one must be admitted")
	}
	if l.reserve("small-5", 1) {
		t.Fatal("900 held + 100 reserved: nothing else fits")
	}
	l.release(100)
	if !l.reserve("big", 900) {
		t.Fatal("the held job must be admitted once it fits")
	}
	if _, held := l.holding(); held {
		t.Fatal("the hold must end when its job is admitted")
	}
	l.hold("x", 100, time.Now())
	l.unhold("x")
	if _, held := l.holding(); held {
		t.Fatal("unhold must end the hold")
	}
}

// The invariant, under concurrency: the memory reserved never exceeds the
// allowance, whatever the interleaving of reservations, releases and holds.
func TestLedgerInvariantUnderConcurrency(t *testing.T) {
	const allowance = 1000
	l := newLedger(allowance)
	var inUse atomic.Int64 // what the goroutines hold: at most what the ledger says
	stop := make(chan struct{})
	var checker sync.WaitGroup
	var violations atomic.Int64
	checker.Add(1)
	go func() {
		defer checker.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, reserved, _ := l.state()
			if reserved > allowance || reserved < 0 || inUse.Load() > allowance {
				violations.Add(1)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			var mine []int
			for i := 0; i < 3000; i++ {
				switch op := rnd.IntN(10); {
				case op < 5:
					mem := 1 + rnd.IntN(400)
					if l.reserve(fmt.Sprintf("g%d-%d", g, i), mem) {
						if inUse.Add(int64(mem)) > allowance {
							violations.Add(1)
						}
						mine = append(mine, mem)
					}
				case op < 8 && len(mine) > 0:
					mem := mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					inUse.Add(-int64(mem))
					l.release(mem)
				case op == 8:
					l.hold(fmt.Sprintf("g%d-%d", g, i), 1+rnd.IntN(allowance), time.Now())
				default:
					if h, ok := l.holding(); ok {
						l.unhold(h.id)
					}
				}
			}
			for _, mem := range mine {
				inUse.Add(-int64(mem))
				l.release(mem)
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	checker.Wait()
	if n := violations.Load(); n > 0 {
		t.Fatalf("the allowance was exceeded %d times", n)
	}
	if _, reserved, _ := l.state(); reserved != 0 {
		t.Fatalf("%d MiB still reserved after every release", reserved)
	}
}

// testEnv is an embedded NATS server and a miniredis for workers under test.
type testEnv struct {
	t      *testing.T
	ctx    context.Context
	broker *broker.Broker
	store  *store.Store
	n      atomic.Int64
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ns, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	ctx := context.Background()
	b, err := broker.Connect(ctx, broker.Config{URL: ns.ClientURL(), AckWait: 10 * time.Second}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &testEnv{t: t, ctx: ctx, broker: b, store: store.New(redistest.Mini(t), store.Config{})}
}

// worker starts a worker with the test's settings; enforcement is off, as
// these tests are about admission.
func (e *testEnv) worker(cfg Config) *Worker {
	e.t.Helper()
	cfg.DataDir = e.t.TempDir()
	cfg.Enforce = EnforceOff
	cfg.Heartbeat = 200 * time.Millisecond
	cfg.PollWait = time.Second
	w, err := New(cfg, Deps{Broker: e.broker, Store: e.store, Log: hclog.NewNullLogger()})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// queue records and publishes a job of mem MiB running argv on cluster.
func (e *testEnv) queue(cluster string, mem int, argv ...string) string {
	e.t.Helper()
	id, err := e.tryQueue(cluster, mem, argv...)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// tryQueue is queue for a goroutine other than the test's.
func (e *testEnv) tryQueue(cluster string, mem int, argv ...string) (string, error) {
	id := fmt.Sprintf("%s-%d", cluster, e.n.Add(1))
	req := &job.Request{ID: id, Command: []string{"type:exec"}, Memory: mem}
	if _, err := e.store.Record(e.ctx, &job.Job{ID: id, Memory: mem, Request: req}); err != nil {
		return "", err
	}
	if err := e.store.Transition(e.ctx, id, job.Queued, nil, store.Update{Cluster: cluster, Command: "exec", Memory: mem}); err != nil {
		return "", err
	}
	return id, e.broker.PublishJob(e.ctx, &job.Spec{ID: id, Cluster: cluster, Command: "exec", Argv: argv, Memory: mem})
}

// await returns the job once cond holds for it, polling its record.
func (e *testEnv) await(id string, within time.Duration, cond func(*job.Job) bool) *job.Job {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := e.store.Get(e.ctx, id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s: condition not met within %s (last %+v, %v)", id, within, j, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func terminal(j *job.Job) bool { return j.Status.Terminal() }

// The invariant through the whole worker: three pull loops (one per
// cluster) share the ledger, jobs of random sizes run at once, and the
// memory of the running jobs never exceeds the allowance.
func TestWorkerRunsWithinItsAllowance(t *testing.T) {
	e := newTestEnv(t)
	const allowance = 1000
	w := e.worker(Config{ID: "w1", Allowance: allowance, Clusters: []string{"a", "b", "c"}, HandBack: 20 * time.Millisecond})
	rnd := rand.New(rand.NewPCG(7, 7))
	var ids []string
	for i := 0; i < 45; i++ {
		ids = append(ids, e.queue([]string{"a", "b", "c"}[i%3], 50+rnd.IntN(550), "sleep", "0.05"))
	}
	stop := make(chan struct{})
	var maxJobs, maxMem, violations atomic.Int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			w.mu.Lock()
			sum, n := 0, 0
			for _, ex := range w.running {
				if ex.memFreed.Load() { // its process ended; it is being archived
					continue
				}
				sum += ex.spec.Memory
				n++
			}
			w.mu.Unlock()
			_, reserved, _ := w.ledger.state()
			if sum > allowance || reserved > allowance {
				violations.Add(1)
			}
			if int64(n) > maxJobs.Load() {
				maxJobs.Store(int64(n))
			}
			if int64(sum) > maxMem.Load() {
				maxMem.Store(int64(sum))
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for _, id := range ids {
		if j := e.await(id, 60*time.Second, terminal); j.Status != job.Succeeded {
			t.Fatalf("job %s: %s %s", id, j.Status, j.Message)
		}
	}
	close(stop)
	sampler.Wait()
	if n := violations.Load(); n > 0 {
		t.Fatalf("the running jobs' memory exceeded the allowance %d times", n)
	}
	if maxJobs.Load() < 2 {
		t.Fatalf("jobs never ran side by side (at most %d at once): the test proves nothing", maxJobs.Load())
	}
	t.Logf("at most %d jobs and %d MiB at once", maxJobs.Load(), maxMem.Load())
}

// No busy loop: a worker without room for the jobs in its queue hands back
// at most about one job per HandBack. (Without pacing, every one of the 20
// queued jobs would come back every HandBack: ~20 times as many.)
func TestHandBackIsPaced(t *testing.T) {
	e := newTestEnv(t)
	const handBack = 100 * time.Millisecond
	w := e.worker(Config{ID: "w1", Allowance: 1000, Clusters: []string{"a"}, HandBack: handBack, ReserveAfter: time.Hour})
	if !w.ledger.reserve("occupant", 600) { // as if a 600 MiB job ran
		t.Fatal("the occupant does not fit")
	}
	var ids []string
	for i := 0; i < 20; i++ {
		ids = append(ids, e.queue("a", 600, "true"))
	}
	const window = 1500 * time.Millisecond
	<-time.After(window)
	refused := w.refused.Load()
	cons, err := e.broker.JobConsumer(e.ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One hand back per HandBack, one more per change of the ledger (none
	// here), the first fetch, and some slack for the time queueing takes.
	// Unpaced, each of the 20 jobs would come back every HandBack: ~300.
	bound := int64(window/handBack) + 5
	t.Logf("%d hand backs, %d deliveries in %s (bound %d)", refused, info.Delivered.Consumer, window, bound)
	if refused > bound || int64(info.Delivered.Consumer) > bound {
		t.Fatalf("%d hand backs and %d deliveries in %s: more than %d is a busy loop", refused, info.Delivered.Consumer, window, bound)
	}
	if refused < 2 {
		t.Fatalf("only %d hand backs: the worker stopped pulling", refused)
	}
	// Hand backs were not attempts, and the jobs run once there is room.
	w.ledger.release(600)
	for _, id := range ids {
		if j := e.await(id, 30*time.Second, terminal); j.Status != job.Succeeded || j.Attempt != 1 {
			t.Fatalf("job %s: %s attempt %d", id, j.Status, j.Attempt)
		}
	}
}

// A large job is not starved by a stream of small ones: once it has waited
// ReserveAfter, the worker admits no small job into the room it needs, and
// it runs within ReserveAfter plus the small jobs' run time (plus delays of
// the order of HandBack). Without the hold, it does not run at all while
// the stream lasts.
func TestLargeJobIsNotStarved(t *testing.T) {
	const (
		handBack     = 50 * time.Millisecond
		reserveAfter = 300 * time.Millisecond
		smallRun     = 300 * time.Millisecond
	)
	run := func(t *testing.T, reserve time.Duration, window time.Duration) (started bool, waited time.Duration, smallsDone int) {
		e := newTestEnv(t)
		e.worker(Config{ID: "w1", Allowance: 1000, Clusters: []string{"a"}, HandBack: handBack, ReserveAfter: reserve})
		// The stream: a 300 MiB job every 80 ms, each running 300 ms; three
		// fit at once, so the queue never runs dry.
		sleep := fmt.Sprint(smallRun.Seconds())
		first := e.queue("a", 300, "sleep", sleep)
		smalls := []string{first}
		stop := make(chan struct{})
		var feeder sync.WaitGroup
		var mu sync.Mutex
		feeder.Add(1)
		go func() {
			defer feeder.Done()
			tick := time.NewTicker(80 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
				case <-stop:
					return
				}
				id, err := e.tryQueue("a", 300, "sleep", sleep)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				smalls = append(smalls, id)
				mu.Unlock()
			}
		}()
		defer func() { close(stop); feeder.Wait() }()
		e.await(first, 10*time.Second, func(j *job.Job) bool { return j.Status == job.Running })
		big := e.queue("a", 900, "true")
		queued := time.Now()
		deadline := time.Now().Add(window)
		for time.Now().Before(deadline) {
			j, err := e.store.Get(e.ctx, big)
			if err == nil && j.Started != nil {
				waited = j.Started.Sub(queued)
				started = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range smalls {
			if j, err := e.store.Get(e.ctx, id); err == nil && j.Status == job.Succeeded {
				smallsDone++
			}
		}
		return started, waited, smallsDone
	}
	t.Run("held", func(t *testing.T) {
		bound := reserveAfter + smallRun + 4*handBack + time.Second // slack for process starts under -race
		started, waited, smalls := run(t, reserveAfter, 10*time.Second)
		if !started {
			t.Fatal("the large job did not start within 10s")
		}
		t.Logf("the large job started after %s (bound %s); %d small jobs done", waited.Round(time.Millisecond), bound, smalls)
		if waited > bound {
			t.Fatalf("the large job waited %s, more than %s", waited, bound)
		}
		if smalls < 3 {
			t.Fatalf("only %d small jobs ran: there was no stream to starve it", smalls)
		}
	})
	t.Run("without the hold it starves", func(t *testing.T) {
		started, waited, smalls := run(t, time.Hour, 2500*time.Millisecond)
		if started {
			t.Skipf("the large job slipped in after %s without the hold (the stream paused); nothing to show (a timing case, in CI too)", waited)
		}
		t.Logf("the large job did not start in 2.5s while %d small jobs ran", smalls)
	})
}
