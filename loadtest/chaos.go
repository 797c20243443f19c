package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"
)

// Fault is one scheduled failure: at At after the start, Action hits Target,
// which comes back after Down.
type Fault struct {
	At     time.Duration
	Action string // "kill" (SIGKILL, restart after Down) or "stop" (SIGSTOP, SIGCONT after Down)
	Target string // a process of the cluster
	Down   time.Duration
}

func (f Fault) String() string {
	verb := map[string]string{"kill": "SIGKILL", "stop": "SIGSTOP"}[f.Action]
	return fmt.Sprintf("t+%s %s %s for %s", f.At.Round(100*time.Millisecond), verb, f.Target, f.Down.Round(100*time.Millisecond))
}

// Schedule returns a named, seeded fault schedule over a run of the given
// length. "default" cycles through every kind of failure the promises must
// survive: a worker killed mid-job, a scheduler killed (the leader among
// them), a NATS server killed, redis-server killed and restarted empty, and
// a worker frozen for longer than its lease. "none" has no faults.
func Schedule(name string, seed uint64, run time.Duration, c ClusterConfig) ([]Fault, error) {
	switch name {
	case "none", "":
		return nil, nil
	case "default":
	default:
		return nil, fmt.Errorf("chaos schedule %q: want default or none", name)
	}
	if err := c.defaults(); err != nil {
		return nil, err
	}
	rnd := rand.New(rand.NewPCG(seed, 7))
	pick := func(kind string, n int) string { return fmt.Sprintf("%s-%d", kind, 1+rnd.IntN(n)) }
	kinds := []func(at time.Duration) Fault{
		func(at time.Duration) Fault { return Fault{at, "kill", pick("worker", c.Workers), 2 * time.Second} },
		func(at time.Duration) Fault {
			return Fault{at, "kill", "leader", 2 * time.Second}
		},
		func(at time.Duration) Fault { return Fault{at, "kill", pick("nats", 3), 3 * time.Second} },
		func(at time.Duration) Fault { return Fault{at, "kill", "redis", time.Second} },
		func(at time.Duration) Fault {
			return Fault{at, "stop", pick("worker", c.Workers), c.AckWait + 2*time.Second}
		},
	}
	var out []Fault
	gap := 6 * time.Second
	for i, at := 0, 3*time.Second; at < run; i, at = i+1, at+gap {
		f := kinds[i%len(kinds)](at)
		// A fault ends before the next one starts: one failure at a time,
		// which is what a 3-server NATS cluster and 2 schedulers promise to
		// survive.
		f.Down = min(f.Down, gap-time.Second)
		out = append(out, f)
	}
	return out, nil
}

// Chaos runs a schedule against a cluster until it ends or ctx is done,
// calling note with what happened.
func Chaos(ctx context.Context, c *Cluster, faults []Fault, note func(string)) {
	start := time.Now()
	for _, f := range faults {
		select {
		case <-time.After(time.Until(start.Add(f.At))):
		case <-ctx.Done():
			return
		}
		var err error
		if f.Target == "leader" { // the scheduler that leads at that moment
			if f.Target, err = c.awaitLeader(ctx, 15*time.Second); err != nil {
				note(fmt.Sprintf("%s: %v", f, err))
				continue
			}
			f.Target += " (the leader)"
		}
		name := strings.TrimSuffix(f.Target, " (the leader)")
		switch f.Action {
		case "kill":
			err = c.Kill(name)
		case "stop":
			err = c.Signal(name, syscall.SIGSTOP)
		}
		if err != nil {
			note(fmt.Sprintf("%s: %v", f, err))
			continue
		}
		note(f.String())
		select {
		case <-time.After(f.Down):
		case <-ctx.Done():
		}
		switch f.Action {
		case "kill":
			err = c.Restart(context.WithoutCancel(ctx), name)
		case "stop":
			err = c.Signal(name, syscall.SIGCONT)
		}
		if err != nil {
			note(fmt.Sprintf("bring back %s: %v", f.Target, err))
		}
	}
}

// awaitLeader returns the leading scheduler, waiting up to within for one
// to be elected (at start, or after the previous fault).
func (c *Cluster) awaitLeader(ctx context.Context, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		name, err := c.Leader(ctx)
		if err == nil || time.Now().After(deadline) {
			return name, err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
