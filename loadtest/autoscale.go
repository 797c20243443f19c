package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
)

// AutoscaleConfig of the autoscale scenario: jinn up --autoscale on this
// machine, a ramp of memory-hungry jobs up to a peak rate, a hold, and a
// stop; the pool is sampled all along. Zero fields take the defaults beside
// them.
type AutoscaleConfig struct {
	// Binary is the jinn executable the workers run. Required.
	Binary string
	// Dir holds the fleet's data and logs. Default: a temporary directory,
	// removed afterwards.
	Dir string
	// Policy of the pool. Default: min 1, max 4, high 60%, low 30%, window
	// 5s, down window 10s, up cooldown 5s, down cooldown 10s, warm-up 5s.
	Policy job.ScalePolicy
	// Interval between two decisions. Default 1s.
	Interval time.Duration
	// Allowance of each worker in MiB. Default 1024.
	Allowance int
	// JobMemory is what each job asks for (MiB), Touch what it really holds
	// (MiB), Hold for how long. Defaults 400, 64 and 10s.
	JobMemory, Touch int
	Hold             time.Duration
	// Peak is the submission rate (jobs a second) reached at the end of
	// Ramp and kept for Steady; submissions then stop. Defaults 0.5, 20s,
	// 40s.
	Peak         float64
	Ramp, Steady time.Duration
	// Settle bounds the wait, after the last submission, for every job to
	// end and the pool to return to its minimum. Default 3m.
	Settle time.Duration
	// Sample is the time between two samples of the pool. Default 500ms.
	Sample   time.Duration
	Seed     uint64
	Progress io.Writer // a progress line now and then, or nil
}

func (c *AutoscaleConfig) defaults() error {
	if c.Binary == "" {
		return errors.New("autoscale scenario: the path of the jinn binary is required")
	}
	if c.Policy == (job.ScalePolicy{}) {
		c.Policy = DefaultAutoscalePolicy()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, time.Second)
	def(&c.Hold, 10*time.Second)
	def(&c.Ramp, 20*time.Second)
	def(&c.Steady, 40*time.Second)
	def(&c.Settle, 3*time.Minute)
	def(&c.Sample, 500*time.Millisecond)
	if c.Allowance <= 0 {
		c.Allowance = 1024
	}
	if c.Touch <= 0 {
		c.Touch = 64
	}
	need := Shape{Kind: "memhog", MemMiB: c.Touch}.memory()
	if c.JobMemory <= 0 {
		c.JobMemory = max(400, need)
	}
	if c.JobMemory < need {
		return fmt.Errorf("autoscale scenario: a job holding %d MiB needs to ask for %d MiB at least (the shell holds copies)", c.Touch, need)
	}
	if c.JobMemory > c.Allowance {
		return fmt.Errorf("autoscale scenario: jobs of %d MiB do not fit workers of %d MiB", c.JobMemory, c.Allowance)
	}
	if c.Peak <= 0 {
		c.Peak = 0.5
	}
	return c.Policy.Validate()
}

// PoolSample is the pool at one moment, as the autoscaler last saw it.
type PoolSample struct {
	At       time.Duration // since the start of the load
	Active   int
	Starting int
	Draining int
	Desired  int
	// Load is used/allowance of the active workers; WaitingMemory (MiB) and
	// WaitingJobs what is queued for the pool.
	Load          float64
	Allowance     int
	Reserved      int
	WaitingMemory int
	WaitingJobs   int
	Submitted     int // jobs submitted so far
}

// ScaleUpTiming follows one scale-up: from the moment pressure began, to the
// decision, to the new worker's start, to the first job it ran.
type ScaleUpTiming struct {
	Decision job.ScaleDecision
	Worker   string
	// Since the pressure began: the decision, the worker started (its
	// heartbeat's start time) and its first job RUNNING; 0 when it did not
	// happen.
	ToDecision, ToWorker, ToFirstJob time.Duration
}

// AutoscaleReport is what the scenario saw.
type AutoscaleReport struct {
	Config    AutoscaleConfig
	Start     time.Time
	Elapsed   time.Duration
	Samples   []PoolSample
	Decisions []job.ScaleDecision // that changed something or whose rule changed, oldest first
	ByStatus  map[job.Status]int
	Submitted int
	Rejected  int
	Retried   int // jobs with more than one attempt
	// Unfinished are the jobs not finished when the run ended.
	Unfinished int
	// Drained are the workers the autoscaler drained; JobsOnDrained the
	// jobs that ran on them, and DrainedFailed those of them that did not
	// succeed.
	Drained       []string
	JobsOnDrained int
	DrainedFailed int
	ScaleUps      []ScaleUpTiming
	MaxActive     int
	FinalActive   int
}

// Lost is the number of jobs that did not end SUCCEEDED.
func (r *AutoscaleReport) Lost() int {
	return r.Submitted - r.Rejected - r.ByStatus[job.Succeeded]
}

// DefaultAutoscalePolicy is the scenario's policy: windows of seconds, so
// that a run takes minutes.
func DefaultAutoscalePolicy() job.ScalePolicy {
	return job.ScalePolicy{Min: 1, Max: 4, High: 0.6, Low: 0.3, Window: 5 * time.Second, DownWindow: 10 * time.Second,
		UpCooldown: 5 * time.Second, DownCooldown: 10 * time.Second, WarmUp: 5 * time.Second, Step: 1, Gap: 5 * time.Second}
}

// RunAutoscale runs the scenario.
func RunAutoscale(ctx context.Context, cfg AutoscaleConfig) (*AutoscaleReport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "jinn-autoscale-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	logf, err := os.Create(filepath.Join(cfg.Dir, "jinn.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	log := hclog.New(&hclog.LoggerOptions{Name: "jinn", Level: hclog.Info, Output: logf})
	f, err := fleet.Up(ctx, fleet.Config{
		DataDir: cfg.Dir, Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1",
		Heartbeat: 500 * time.Millisecond, KillGrace: 2 * time.Second, Log: log,
		Autoscale: &fleet.Autoscale{Binary: cfg.Binary, Policy: cfg.Policy, Interval: cfg.Interval, Allowance: cfg.Allowance},
	})
	if err != nil {
		return nil, fmt.Errorf("start jinn: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.Close(cctx)
	}()
	api := client.New(f.URL)
	say := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", args...)
		}
	}
	say("jinn is up at %s (data and logs in %s); waiting for the first worker", f.URL, cfg.Dir)
	if err := waitFor(ctx, time.Minute, func() bool {
		p, err := api.Pool(ctx, "default", 0)
		return err == nil && p.Size >= cfg.Policy.Min
	}); err != nil {
		return nil, fmt.Errorf("the pool did not reach its minimum: %w (see %s)", err, logf.Name())
	}

	rep := &AutoscaleReport{Config: cfg, Start: time.Now(), ByStatus: map[job.Status]int{}}
	var mu sync.Mutex
	var ids []string
	submitted := func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }
	started := map[string]time.Time{} // worker → its start, from heartbeats; the sampler's

	// The sampler.
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(cfg.Sample)
		defer t.Stop()
		for {
			if p, err := api.Pool(sctx, "default", 0); err == nil && p.Last != nil {
				in := p.Last.Inputs
				s := PoolSample{At: time.Since(rep.Start), Active: p.Size, Starting: p.Starting,
					Draining: len(p.Draining), Desired: p.Desired, Load: in.Load, Allowance: in.Allowance, Reserved: in.Reserved,
					WaitingMemory: in.WaitingMemory, WaitingJobs: in.WaitingJobs, Submitted: submitted()}
				mu.Lock()
				rep.Samples = append(rep.Samples, s)
				mu.Unlock()
			}
			if ws, err := f.Store.Workers(sctx); err == nil {
				for _, w := range ws {
					if _, ok := started[w.ID]; !ok {
						started[w.ID] = w.Started
					}
				}
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	// The load: the rate climbs linearly to Peak over Ramp, stays for
	// Steady, then stops.
	rnd := rand.New(rand.NewPCG(cfg.Seed, 0x6a696e6e))
	work := Shape{Kind: "memhog", MemMiB: cfg.Touch, Hold: cfg.Hold}.work(rnd)
	credit, last := 0.0, time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	end := rep.Start.Add(cfg.Ramp + cfg.Steady)
	nextSay := rep.Start
	for now := time.Now(); now.Before(end); now = time.Now() {
		el := now.Sub(rep.Start)
		rate := cfg.Peak
		if el < cfg.Ramp {
			rate = cfg.Peak * float64(el) / float64(cfg.Ramp)
		}
		credit += rate * now.Sub(last).Seconds()
		last = now
		for ; credit >= 1; credit-- {
			req := &job.Request{Name: "autoscale", User: "loadtest", Command: []string{"type:bash"}, Args: []string{work}, Memory: cfg.JobMemory}
			j, err := api.Submit(ctx, req)
			rep.Submitted++
			if err != nil {
				rep.Rejected++
				say("submit: %v", err)
				continue
			}
			mu.Lock()
			ids = append(ids, j.ID)
			mu.Unlock()
		}
		if now.After(nextSay) {
			mu.Lock()
			line := lastLine(rep)
			mu.Unlock()
			say("%5.0fs  rate %.2f/s  submitted %d  %s", el.Seconds(), rate, submitted(), line)
			nextSay = now.Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	tick.Stop()
	say("load stopped after %d jobs; waiting for them to end and the pool to shrink", rep.Submitted)

	// Settle: every job ends and the pool returns to its minimum.
	finals := map[string]*job.Job{}
	nextSay = time.Now()
	err = waitFor(ctx, cfg.Settle, func() bool {
		for _, id := range ids {
			if j, ok := finals[id]; ok && j.Status.Terminal() {
				continue
			}
			j, err := api.Get(ctx, id)
			if err != nil {
				return false
			}
			finals[id] = j
			if !j.Status.Terminal() {
				return false
			}
		}
		p, err := api.Pool(ctx, "default", 0)
		if time.Now().After(nextSay) && err == nil {
			say("settling: %d active, %d draining, desired %d: %s", p.Size, len(p.Draining), p.Desired, p.Last.Reason)
			nextSay = time.Now().Add(5 * time.Second)
		}
		return err == nil && p.Size == cfg.Policy.Min && len(p.Draining) == 0 && p.Desired == cfg.Policy.Min && p.Starting == 0
	})
	rep.Elapsed = time.Since(rep.Start)
	stopSampling()
	<-sampled
	if err != nil {
		say("the run did not settle within %s: %v", cfg.Settle, err)
	}

	// The outcome.
	p, perr := api.Pool(ctx, "default", 200)
	if perr != nil {
		return nil, perr
	}
	if p.Last != nil { // the settled pool, as the last sample
		in := p.Last.Inputs
		rep.Samples = append(rep.Samples, PoolSample{At: rep.Elapsed, Active: p.Size, Starting: p.Starting, Draining: len(p.Draining),
			Desired: p.Desired, Load: in.Load, Allowance: in.Allowance, Reserved: in.Reserved,
			WaitingMemory: in.WaitingMemory, WaitingJobs: in.WaitingJobs, Submitted: len(ids)})
	}
	for i := len(p.Decisions) - 1; i >= 0; i-- {
		rep.Decisions = append(rep.Decisions, p.Decisions[i])
	}
	for _, id := range ids {
		j := finals[id]
		if j == nil {
			if j, err = api.Get(ctx, id); err != nil {
				rep.Unfinished++
				continue
			}
		}
		rep.ByStatus[j.Status]++
		if !j.Status.Terminal() {
			rep.Unfinished++
		}
		if j.Attempt > 1 {
			rep.Retried++
		}
		finals[id] = j
	}
	rep.measure(finals, p, started)
	return rep, nil
}

// measure works out the drained workers' jobs and the scale-up timings.
func (r *AutoscaleReport) measure(finals map[string]*job.Job, p *job.Pool, started map[string]time.Time) {
	drained := map[string]bool{}
	for _, d := range r.Decisions {
		if d.Action == job.ScaleDown && d.Drain != "" {
			r.Drained = append(r.Drained, d.Drain)
			drained[d.Drain] = true
		}
	}
	// Each worker's first job.
	first := map[string]time.Time{}
	for _, j := range finals {
		if drained[j.Worker] {
			r.JobsOnDrained++
			if j.Status != job.Succeeded {
				r.DrainedFailed++
			}
		}
		if j.Started != nil && j.Worker != "" {
			if t, ok := first[j.Worker]; !ok || j.Started.Before(t) {
				first[j.Worker] = *j.Started
			}
		}
	}
	type firstJob struct {
		worker string
		at     time.Time
	}
	var byStart []firstJob
	for w, t := range first {
		byStart = append(byStart, firstJob{w, t})
	}
	sort.Slice(byStart, func(i, j int) bool { return byStart[i].at.Before(byStart[j].at) })
	used := map[string]bool{}
	for _, d := range r.Decisions {
		if d.Action != job.ScaleUp || d.Rule == job.RuleMin || d.Since.IsZero() {
			continue
		}
		t := ScaleUpTiming{Decision: d, ToDecision: d.Time.Sub(d.Since)}
		// The new worker: the first to run a job after the decision that
		// had run none before it.
		for _, fj := range byStart {
			if fj.at.After(d.Time) && !used[fj.worker] && !ranBefore(finals, fj.worker, d.Time) {
				used[fj.worker] = true
				t.Worker, t.ToFirstJob = fj.worker, fj.at.Sub(d.Since)
				if st, ok := started[fj.worker]; ok {
					t.ToWorker = st.Sub(d.Since)
				}
				break
			}
		}
		r.ScaleUps = append(r.ScaleUps, t)
	}
	for _, s := range r.Samples {
		r.MaxActive = max(r.MaxActive, s.Active)
	}
	r.FinalActive = p.Size
}

func ranBefore(finals map[string]*job.Job, worker string, t time.Time) bool {
	for _, j := range finals {
		if j.Worker == worker && j.Started != nil && j.Started.Before(t) {
			return true
		}
	}
	return false
}

func lastLine(r *AutoscaleReport) string {
	if len(r.Samples) == 0 {
		return ""
	}
	s := r.Samples[len(r.Samples)-1]
	return fmt.Sprintf("workers %d (desired %d)  load %.0f%%  waiting %d MiB", s.Active, s.Desired, s.Load*100, s.WaitingMemory)
}

// waitFor checks cond every 200ms until it holds or within passes.
func waitFor(ctx context.Context, within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
