package scheduler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// admitEnv is an Admitter over an embedded NATS server and a miniredis.
type admitEnv struct {
	ctx context.Context
	a   *Admitter
	s   *store.Store
	r   *store.Registry
}

func newAdmitEnv(t *testing.T, cfg Config) *admitEnv {
	t.Helper()
	log := hclog.NewNullLogger()
	ns, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	ctx := context.Background()
	b, err := broker.Connect(ctx, broker.Config{URL: ns.ClientURL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kv, err := b.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: broker.ConfigBucket})
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.OpenRegistry(ctx, kv, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	s := store.New(redistest.Mini(t), store.Config{})
	return &admitEnv{ctx: ctx, a: NewAdmitter(cfg, b, s, r, log), s: s, r: r}
}

func (e *admitEnv) cluster(t *testing.T, name string, tags ...string) {
	t.Helper()
	if _, err := e.r.PutCluster(e.ctx, job.Cluster{Name: name, Tags: tags, Status: job.ClusterUp}, 0); err != nil {
		t.Fatal(err)
	}
}

func (e *admitEnv) worker(t *testing.T, id string, allowance, reserved int, state job.WorkerState, clusters ...string) {
	t.Helper()
	w := &job.Worker{ID: id, Pool: "default", Clusters: clusters, Allowance: allowance, Reserved: reserved,
		State: state, Started: time.Now(), Heartbeat: time.Now()}
	if err := e.s.Heartbeat(e.ctx, w, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// The largest allowance is per cluster, over the workers that take jobs;
// among clusters that match equally well, one with a worker large enough
// wins even when another has more free memory.
func TestAdmitTheLargestWorker(t *testing.T) {
	e := newAdmitEnv(t, Config{DefaultMemory: 100})
	e.cluster(t, "small", "sched:adhoc")
	e.cluster(t, "large", "sched:adhoc")
	e.cluster(t, "nobody", "sched:nobody")
	if _, err := e.r.PutCommand(e.ctx, job.Command{Name: "exec", Tags: []string{"type:exec"}, Status: job.CommandActive}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.PutCommand(e.ctx, job.Command{Name: "fat", Tags: []string{"type:fat"}, Status: job.CommandActive, Memory: 3000, Executable: []string{"true"}}, 0); err != nil {
		t.Fatal(err)
	}
	e.worker(t, "w-small", 500, 0, job.WorkerActive, "small")
	e.worker(t, "w-large", 4000, 3900, job.WorkerActive, "large")
	e.worker(t, "w-draining", 8000, 0, job.WorkerDraining, "small", "large")

	n := 0
	admit := func(req job.Request) (*job.Job, error) {
		n++
		req.ID = "job-" + string(rune('a'+n))
		if req.Command == nil {
			req.Command = []string{"type:exec"}
		}
		j, _, err := e.a.Admit(e.ctx, &req)
		return j, err
	}
	adhoc := [][]string{{"sched:adhoc"}}

	// Small fits both: the cluster with the most free memory wins.
	if j, err := admit(job.Request{Clusters: adhoc, Memory: 400}); err != nil || j.Cluster != "small" || j.Memory != 400 {
		t.Fatalf("400 MiB: %+v %v", j, err)
	}
	// 1000 MiB is too large for small, though it has more free memory.
	for i := 0; i < 10; i++ {
		if j, err := admit(job.Request{Clusters: adhoc, Memory: 1000}); err != nil || j.Cluster != "large" || j.Status != job.Queued {
			t.Fatalf("1000 MiB: %+v %v", j, err)
		}
	}
	// The command's default memory counts the same way.
	if j, err := admit(job.Request{Command: []string{"type:fat"}, Clusters: adhoc}); err != nil || j.Cluster != "large" || j.Memory != 3000 {
		t.Fatalf("the command's 3000 MiB: %+v %v", j, err)
	}
	// The global default.
	if j, err := admit(job.Request{Clusters: adhoc}); err != nil || j.Memory != 100 {
		t.Fatalf("the default memory: %+v %v", j, err)
	}
	// Larger than every worker that takes jobs; the draining one's 8000 MiB
	// does not count.
	_, err := admit(job.Request{Clusters: adhoc, Memory: 5000})
	var rejected *RejectedError
	if !errors.As(err, &rejected) || rejected.Job.Status != job.Invalid ||
		!strings.Contains(err.Error(), "job needs 5000 MiB of memory but the largest worker serving cluster") ||
		!strings.Contains(err.Error(), "gives jobs 4000 MiB") && !strings.Contains(err.Error(), "gives jobs 500 MiB") {
		t.Fatalf("5000 MiB: %v", err)
	}
	// Only the small cluster matches: refused with its numbers.
	_, err = admit(job.Request{Clusters: [][]string{{"name:small"}}, Memory: 1000})
	if !errors.As(err, &rejected) || !strings.Contains(err.Error(), "job needs 1000 MiB of memory but the largest worker serving cluster small gives jobs 500 MiB") {
		t.Fatalf("1000 MiB on small only: %v", err)
	}
	// No worker serves the cluster yet: one may come, any size waits.
	if j, err := admit(job.Request{Clusters: [][]string{{"sched:nobody"}}, Memory: 100000}); err != nil || j.Status != job.Queued {
		t.Fatalf("a cluster without workers: %+v %v", j, err)
	}
}

// The active limit is checked and recorded in one script: of many
// concurrent submissions, exactly the limit get through.
func TestAdmitUserActiveLimit(t *testing.T) {
	e := newAdmitEnv(t, Config{UserActiveLimit: 3, UserLimits: map[string]int{"etl": 0}})
	e.cluster(t, "local", "sched:adhoc")
	if _, err := e.r.PutCommand(e.ctx, job.Command{Name: "exec", Tags: []string{"type:exec"}, Status: job.CommandActive}, 0); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func(i int) {
			req := &job.Request{ID: "alice-" + string(rune('a'+i)), User: "alice", Command: []string{"type:exec"}}
			_, _, err := e.a.Admit(e.ctx, req)
			results <- err
		}(i)
	}
	ok, limited := 0, 0
	for i := 0; i < 20; i++ {
		var le *store.ActiveLimitError
		switch err := <-results; {
		case err == nil:
			ok++
		case errors.As(err, &le):
			limited++
			if le.User != "alice" || le.Limit != 3 || le.Active != 3 {
				t.Errorf("limit error: %+v", le)
			}
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if ok != 3 || limited != 17 {
		t.Fatalf("%d admitted and %d refused, want 3 and 17", ok, limited)
	}
	if n, _ := e.s.ActiveJobs(e.ctx, "alice"); n != 3 {
		t.Fatalf("alice has %d unfinished jobs, want 3", n)
	}
	for i := 0; i < 5; i++ {
		if _, _, err := e.a.Admit(e.ctx, &job.Request{User: "etl", Command: []string{"type:exec"}}); err != nil {
			t.Fatalf("etl has no limit: %v", err)
		}
	}
}

func TestParseUserLimits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "limits")
	if err := os.WriteFile(file, []byte("# users\nalice=50\n\n etl = 500 \nbatch@corp=0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in   string
		want map[string]int
		err  string
	}{
		{"", nil, ""},
		{"alice=50,etl=500", map[string]int{"alice": 50, "etl": 500}, ""},
		{"alice=50, ,etl=0", map[string]int{"alice": 50, "etl": 0}, ""},
		{"@" + file, map[string]int{"alice": 50, "etl": 500, "batch@corp": 0}, ""},
		{"alice", nil, "write user=limit"},
		{"alice=-1", nil, "write user=limit"},
		{"alice=x", nil, "write user=limit"},
		{"al ice=3", nil, "not a valid user"},
		{"alice=1,alice=2", nil, "listed twice"},
		{"@/no/such/file", nil, "no such file"},
	}
	for _, c := range cases {
		got, err := ParseUserLimits(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("%q: %v %v, want %v", c.in, got, err, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%q: %s=%d, want %d", c.in, k, got[k], v)
			}
		}
	}
}

func TestHoldDelay(t *testing.T) {
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for n, w := range want {
		if got := holdDelay(uint64(n)); got != w {
			t.Errorf("delivery %d: %s, want %s", n, got, w)
		}
	}
	if holdDelay(1<<40) != holdMax {
		t.Error("a long-held request waits holdMax")
	}
}
