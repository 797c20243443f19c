package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler/scale"
)

// withAutoscale runs the fleet's workers as `jinn worker` child processes
// sized by the autoscaler.
func withAutoscale(a *fleet.Autoscale) option { return func(c *fleet.Config) { c.Autoscale = a } }

// fastPolicy scales within seconds.
var fastPolicy = job.ScalePolicy{
	Min: 1, Max: 3, High: 0.6, Low: 0.3,
	Window: time.Second, DownWindow: 2 * time.Second,
	UpCooldown: time.Second, DownCooldown: 2 * time.Second,
	WarmUp: time.Second, Step: 1, Gap: 2 * time.Second,
}

// poll waits until cond holds, checking every 50ms: the pool's state lives
// in Redis and heartbeats, which publish no event to wait on.
func poll(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		<-tick.C
	}
}

// poolWorkers returns the pool's live workers by state.
func (s *sys) poolWorkers(t *testing.T) (active, draining []job.Worker) {
	t.Helper()
	ws, err := s.Store.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.Pool != "default" {
			continue
		}
		if w.State == job.WorkerActive {
			active = append(active, w)
		} else {
			draining = append(draining, w)
		}
	}
	return active, draining
}

func liveProcs(t *testing.T, l *scale.Local) int {
	t.Helper()
	list, err := l.List(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range list {
		if in.Live {
			n++
		}
	}
	return n
}

// A pool of local workers grows from 1 to 3 while jobs that need most of a
// worker's memory wait, and drains back to 1 once they are done, with no job
// killed, lost or run twice.
func TestAutoscaleGrowsAndDrains(t *testing.T) {
	bin := jinnBinary(t)
	s := start(t, withAutoscale(&fleet.Autoscale{Binary: bin, Policy: fastPolicy, Interval: 100 * time.Millisecond, Allowance: 1000}))
	poll(t, "the first worker", 20*time.Second, func() bool { a, _ := s.poolWorkers(t); return len(a) == 1 })

	// Three jobs of 700 MiB: each needs a worker of its own.
	var jobs []*job.Job
	for range 3 {
		r := bash("sleep 4; echo done")
		r.Memory = 700
		jobs = append(jobs, s.submit(r))
	}
	ran := map[string]bool{}
	poll(t, "all three jobs running on three workers", 25*time.Second, func() bool {
		for _, j := range jobs {
			got, err := s.Store.Get(context.Background(), j.ID)
			if err != nil || got.Status != job.Running {
				return false
			}
			ran[got.Worker] = true
		}
		return len(ran) == 3
	})
	p, err := s.Store.Pool(context.Background(), "default", 50)
	if err != nil {
		t.Fatal(err)
	}
	var up *job.ScaleDecision
	for i := range p.Decisions {
		if d := p.Decisions[i]; d.Action == job.ScaleUp && d.Rule != job.RuleMin {
			up = &d
		}
	}
	if up == nil || up.Inputs.Load <= fastPolicy.High && up.Inputs.Unplaced == 0 {
		t.Fatalf("no scale-up for load in the decisions: %+v", p.Decisions)
	}
	t.Logf("grew: %s", up.Reason)

	// The API serves the record, its decisions and reasons.
	api := client.New(s.URL)
	pools, err := api.Pools(context.Background(), 5)
	if err != nil || len(pools) != 1 || pools[0].Name != "default" || pools[0].Provider != "local" || pools[0].Desired != 3 || len(pools[0].Decisions) == 0 {
		t.Fatalf("GET /pools: %+v, %v", pools, err)
	}
	if _, err := api.Pool(context.Background(), "nope", -1); !client.IsNotFound(err) {
		t.Fatalf("GET /pools/nope: %v, want 404", err)
	}

	for _, j := range jobs {
		if got := s.wait(j.ID, 20*time.Second); got.Status != job.Succeeded || got.Attempt != 1 {
			t.Fatalf("job %s: %s, attempt %d (%s)", j.ID, got.Status, got.Attempt, got.Message)
		}
	}

	// Idle: the pool drains back to its minimum, one worker at a time.
	var active, draining []job.Worker
	procs := 0
	defer func() {
		if t.Failed() {
			p, _ := s.Store.Pool(context.Background(), "default", 50)
			t.Logf("at the failure: %d active, %d draining, %d processes; pool %+v", len(active), len(draining), procs, p)
			for _, w := range append(active, draining...) {
				t.Logf("worker %+v", w)
			}
		}
	}()
	poll(t, "the pool back to one worker", 60*time.Second, func() bool {
		active, draining = s.poolWorkers(t)
		procs = liveProcs(t, s.LocalWorkers)
		return len(active) == 1 && len(draining) == 0 && procs == 1
	})
	// The leader records the pool at its next tick; allow for a change of
	// leader on a loaded machine (the leader TTL is 10 s).
	poll(t, "the record to say so", 25*time.Second, func() bool {
		p, err = s.Store.Pool(context.Background(), "default", 50)
		return err == nil && p.Desired == 1 && len(p.Draining) == 0 && p.Size == 1
	})
	var downs []string // distinct workers drained (a slow drain may be decided again)
	for _, d := range p.Decisions {
		if d.Action == job.ScaleDown {
			if !slices.Contains(downs, d.Drain) {
				downs = append(downs, d.Drain)
			}
			if d.Rule != job.RuleLow {
				t.Errorf("down decision for %s: %s", d.Drain, d.Reason)
			}
		}
	}
	if len(downs) != 2 {
		t.Fatalf("drained %v, want two workers (decisions %+v)", downs, p.Decisions)
	}
	for _, j := range jobs {
		got, _ := s.Store.Get(context.Background(), j.ID)
		if got.Status != job.Succeeded || got.Attempt != 1 {
			t.Fatalf("after the scale-down, job %s: %s, attempt %d", j.ID, got.Status, got.Attempt)
		}
	}
	// The last worker still runs jobs.
	r := bash("echo still here")
	if j := s.wait(s.submit(r).ID, 20*time.Second); j.Status != job.Succeeded {
		t.Fatalf("a job after the scale-down: %+v", j)
	}
}
