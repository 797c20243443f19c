package scheduler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/store"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type reaperFixture struct {
	t       *testing.T
	ctx     context.Context
	clock   *fakeClock
	broker  *broker.Broker
	store   *store.Store
	archive *store.LocalArchive
	reaper  *scheduler.Reaper
}

func newReaperFixture(t *testing.T) *reaperFixture {
	ctx := context.Background()
	ns := startNATS(t)
	b := connect(t, ns.ClientURL())
	clk := &fakeClock{now: time.Now()}
	st := store.New(redistest.Mini(t), store.Config{Now: clk.Now})
	arch, err := store.OpenLocalArchive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := b.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: broker.ConfigBucket})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := store.OpenRegistry(ctx, kv, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	if _, err := reg.PutCluster(ctx, job.Cluster{Name: "local", Tags: []string{"sched:adhoc"}, Status: job.ClusterUp}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.PutCommand(ctx, job.Command{Name: "exec", Tags: []string{"type:exec"}, Status: job.CommandActive}, 0); err != nil {
		t.Fatal(err)
	}
	adm := scheduler.NewAdmitter(scheduler.Config{}, b, st, reg, testLog(t))
	r := scheduler.NewReaper(scheduler.ReaperConfig{Now: clk.Now}, st, b, arch, adm, testLog(t))
	return &reaperFixture{t: t, ctx: ctx, clock: clk, broker: b, store: st, archive: arch, reaper: r}
}

// job records id and moves it to st; an active job is claimed by worker
// under a lease of stream sequence seq.
func (f *reaperFixture) job(id string, st job.Status, worker string, seq uint64) {
	f.t.Helper()
	req := &job.Request{ID: id, Command: []string{"type:exec"}, Args: []string{"true"}}
	if _, err := f.store.Record(f.ctx, &job.Job{ID: id, Request: req}); err != nil {
		f.t.Fatal(err)
	}
	if st == job.Accepted {
		return
	}
	if err := f.store.Transition(f.ctx, id, job.Queued, nil, store.Update{Cluster: "local", Command: "exec"}); err != nil {
		f.t.Fatal(err)
	}
	if st == job.Queued {
		return
	}
	lease := job.Lease{Seq: seq, Delivery: 1}
	if out, _, err := f.store.Claim(f.ctx, id, worker, lease); err != nil || out != store.ClaimOK {
		f.t.Fatalf("claim %s: %s %v", id, out, err)
	}
	for _, next := range []job.Status{job.Init, job.Running} {
		if st == job.Claimed {
			return
		}
		if err := f.store.Transition(f.ctx, id, next, &lease, store.Update{}); err != nil {
			f.t.Fatal(err)
		}
		if st == next {
			return
		}
	}
}

// publish queues a message for id and returns its stream sequence.
func (f *reaperFixture) publish(id string) uint64 {
	f.t.Helper()
	if err := f.broker.PublishJob(f.ctx, &job.Spec{ID: id, Cluster: "local", Command: "exec", Argv: []string{"true"}}); err != nil {
		f.t.Fatal(err)
	}
	_, seq, err := f.broker.QueuedJob(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return seq
}

func (f *reaperFixture) get(id string) *job.Job {
	f.t.Helper()
	j, err := f.store.Get(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func (f *reaperFixture) expect(id string, st job.Status, msg string) {
	f.t.Helper()
	j := f.get(id)
	if j.Status != st || !strings.Contains(j.Message, msg) {
		f.t.Errorf("job %s: %s %q; want %s with a message containing %q", id, j.Status, j.Message, st, msg)
	}
}

// gone is a stream sequence that holds no message.
const gone = 1 << 40

func TestReaper(t *testing.T) {
	f := newReaperFixture(t)
	ctx := f.ctx
	if err := f.store.Heartbeat(ctx, &job.Worker{ID: "w-live"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	f.job("lost", job.Running, "w-dead", gone)
	f.job("redeliverable", job.Running, "w-dead", f.publish("redeliverable"))
	f.job("owner-alive", job.Running, "w-live", gone)
	f.job("finished", job.Running, "w-dead", gone)
	code := 0
	var rec bytes.Buffer
	_ = json.NewEncoder(&rec).Encode(job.Job{ID: "finished", Status: job.Succeeded, ExitCode: &code, Attempt: 1})
	if err := f.archive.Put(ctx, store.RecordKey("finished"), &rec); err != nil {
		t.Fatal(err)
	}
	f.job("stuck-init", job.Init, "w-live", gone-1)
	f.job("queued-vanished", job.Queued, "", 0)
	f.job("queued", job.Queued, "", 0)
	f.publish("queued")
	f.job("half-admitted", job.Accepted, "", 0)

	// An older leader is refused and changes nothing.
	if err := f.store.Lead(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := f.reaper.Tick(ctx, scheduler.Lead{Token: 6}); !errors.Is(err, store.ErrStaleLeader) {
		t.Fatalf("tick of a stale leader: %v", err)
	}
	f.expect("lost", job.Running, "")

	if err := f.reaper.Tick(ctx, scheduler.Lead{Token: 7}); err != nil {
		t.Fatal(err)
	}
	f.expect("lost", job.Lost, "worker w-dead was lost during attempt 1")
	f.expect("redeliverable", job.Running, "") // the claim of its redelivery settles it
	f.expect("owner-alive", job.Running, "")
	f.expect("finished", job.Succeeded, "")
	if j := f.get("finished"); j.ExitCode == nil || *j.ExitCode != 0 {
		t.Errorf("finished: exit code %v", j.ExitCode)
	}
	// Nothing below is old enough yet.
	f.expect("stuck-init", job.Init, "")
	f.expect("queued-vanished", job.Queued, "")
	f.expect("half-admitted", job.Accepted, "")

	f.clock.Advance(11 * time.Minute)
	if err := f.reaper.Tick(ctx, scheduler.Lead{Token: 8}); err != nil {
		t.Fatal(err)
	}
	f.expect("stuck-init", job.Failed, "stuck in INIT for more than 10m0s on worker w-live")
	// A QUEUED job whose message is missing (its publish failed) is queued again.
	f.expect("queued-vanished", job.Queued, "")
	if _, _, err := f.broker.QueuedJob(ctx, "queued-vanished"); err != nil {
		t.Errorf("the requeued job has no message: %v", err)
	}
	f.expect("queued", job.Queued, "")
	f.expect("half-admitted", job.Queued, "")
	if _, _, err := f.broker.QueuedJob(ctx, "half-admitted"); err != nil {
		t.Errorf("the re-admitted job has no message: %v", err)
	}
	f.expect("redeliverable", job.Running, "")
	f.expect("owner-alive", job.Running, "")

	// The token of the last leader is the one on record.
	if err := f.store.Lead(ctx, 7); !errors.Is(err, store.ErrStaleLeader) {
		t.Fatalf("Lead(7) after token 8 wrote: %v", err)
	}
}

// A settle checks the job did not change since the reaper read it: a claim
// or a status write in between wins.
func TestSettleRefusesChangedJob(t *testing.T) {
	f := newReaperFixture(t)
	f.job("j", job.Running, "w-dead", gone)
	lease := job.Lease{Seq: gone, Delivery: 1}
	// The reaper read it RUNNING under lease; then a new attempt claimed it.
	if err := f.store.Transition(f.ctx, "j", job.Claimed, nil, store.Update{}); err != nil {
		t.Fatal(err)
	}
	err := f.store.Settle(f.ctx, 1, store.Settlement{ID: "j", Seen: job.Running, Lease: &lease, OwnerGone: true, To: job.Lost, Message: "x"})
	var refused *store.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("settle of a changed job: %v", err)
	}
	f.expect("j", job.Claimed, "")
	// With a live owner, OwnerGone refuses too.
	if err := f.store.Heartbeat(f.ctx, &job.Worker{ID: "w-dead"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	err = f.store.Settle(f.ctx, 1, store.Settlement{ID: "j", Seen: job.Claimed, Lease: &lease, OwnerGone: true, To: job.Lost, Message: "x"})
	if !errors.As(err, &refused) {
		t.Fatalf("settle of a job whose owner is alive: %v", err)
	}
	f.expect("j", job.Claimed, "")
}
