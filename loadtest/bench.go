package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
)

// BenchConfig of the benchmark suite (`jinn bench`, `make bench`). Zero
// fields take the defaults beside them.
type BenchConfig struct {
	// Dir holds the fleets' data; default a temporary directory, removed.
	Dir string
	// Binary is the jinn binary whose footprint is measured (section 6);
	// empty skips the footprint.
	Binary string
	// Concurrency of the trivial-job runs, jinn's and the floor's: the jobs
	// running at once, and the concurrent HTTP clients of the intake runs.
	// Default 2 × the cores.
	Concurrency int
	// Jobs of each trivial-job throughput run. Default 1500.
	Jobs int
	// Level is how long each open-loop latency level runs. Default 8s.
	Level time.Duration
	// Window is how long each intake and producer run lasts. Default 4s.
	Window time.Duration
	// Simulated are the fleet sizes of the scale simulation. Default
	// 1,000 and 10,000.
	Simulated []int
	// RedisServer is the redis-server binary for the scale simulation;
	// default the one on PATH, else the embedded Redis.
	RedisServer string
	// Only runs these sections (1 and 2 go together, as do 3 and 4); empty
	// runs all. For profiling one part.
	Only     []int
	Progress io.Writer // one line per step, or nil
	Log      hclog.Logger
}

func (c *BenchConfig) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 2 * runtime.NumCPU()
	}
	if c.Jobs <= 0 {
		c.Jobs = 1500
	}
	if c.Level <= 0 {
		c.Level = 8 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 4 * time.Second
	}
	if len(c.Simulated) == 0 {
		c.Simulated = []int{1000, 10000}
	}
	if c.RedisServer == "" {
		c.RedisServer, _ = exec.LookPath("redis-server")
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Log == nil {
		c.Log = hclog.NewNullLogger()
	}
}

// BenchReport is what one run of the suite measured.
type BenchReport struct {
	Started     time.Time
	Elapsed     time.Duration
	Cores       int
	MemoryMiB   int
	Load        string // /proc/loadavg at the start
	Concurrency int

	// 1. Trivial jobs end to end against the fork/exec floor; JinnRedis
	// is the same run on redis-server instead of the embedded Redis.
	Jinn, Floor, JinnRedis Throughput
	// 2. Submit→running at fractions of Jinn's rate.
	Levels []LatencyLevel
	// 3. Intake against a minimal HTTP→JetStream handler; IntakeRedis on
	// redis-server.
	Intake, IntakeFloor, IntakeRedis Rate
	// 4. Direct producers: client.Publisher against a raw publish.
	Publisher, RawPublish Rate
	// 5. Scale simulation.
	Scale      []ScaleRun
	ScaleRedis string // which Redis the simulation used
	// 6. Footprint; zero when no binary was given.
	Footprint Footprint
	Notes     []string
}

// Throughput of a run of trivial jobs.
type Throughput struct {
	Jobs    int
	Elapsed time.Duration
	PerSec  float64
	Failed  int
	// Done are the completion times since the run's start, for the plot.
	Done []time.Duration
	// PerJob is the submit → final status seen by the client, and Phases
	// split it by the job's recorded times (jinn's runs only).
	PerJob Percentiles
	Phases []Phase
}

// Phase of a job's life, from its record's timestamps.
type Phase struct {
	Name string
	Time Percentiles
}

// LatencyLevel is one open-loop run.
type LatencyLevel struct {
	Fraction float64 // of the measured maximum rate
	Rate     float64 // jobs a second offered
	Sent     int
	Started  Percentiles // submit (intended time) → RUNNING recorded
	Accept   Percentiles // the submit's round trip
	samples  []time.Duration
}

// Rate of a closed-loop request run.
type Rate struct {
	N       int
	Errors  int
	PerSec  float64
	Latency Percentiles
}

func (c BenchConfig) step(format string, args ...any) {
	fmt.Fprintf(c.Progress, "bench: "+format+"\n", args...)
}

// RunBench runs the suite and returns its report.
func RunBench(ctx context.Context, cfg BenchConfig) (*BenchReport, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "jinn-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		cfg.Dir = d
	}
	rep := &BenchReport{Started: time.Now(), Cores: runtime.NumCPU(), MemoryMiB: memTotalMiB(), Load: loadAvg(), Concurrency: cfg.Concurrency}
	run := func(sections ...int) bool {
		if len(cfg.Only) == 0 {
			return true
		}
		for _, s := range sections {
			if slices.Contains(cfg.Only, s) {
				return true
			}
		}
		return false
	}
	if run(1, 2) {
		if err := benchEndToEnd(ctx, cfg, rep); err != nil {
			return nil, err
		}
		if cfg.RedisServer != "" {
			if err := benchOnRedis(ctx, cfg, rep); err != nil {
				return nil, err
			}
		}
	}
	if run(3, 4) {
		if err := benchIntake(ctx, cfg, rep); err != nil {
			return nil, err
		}
	}
	if run(5) {
		if err := benchScale(ctx, cfg, rep); err != nil {
			return nil, err
		}
	}
	if cfg.Binary != "" && run(6) {
		if err := benchFootprint(ctx, cfg, rep); err != nil {
			return nil, err
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	return rep, nil
}

// upBench starts an in-process fleet (the wiring of `jinn up`) in dir.
// redisURL empty runs the embedded Redis, as `jinn up` does by default.
func upBench(ctx context.Context, cfg BenchConfig, dir, redisURL string, workers, allowance int) (*fleet.Fleet, error) {
	f, err := fleet.Up(ctx, fleet.Config{DataDir: dir, Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", RedisURL: redisURL,
		Workers: workers, Allowance: allowance, Log: cfg.Log.Named(filepath.Base(dir))})
	if err != nil {
		return nil, fmt.Errorf("bench: start the fleet: %w", err)
	}
	return f, nil
}

func benchUser(what string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "bench-" + what + "-" + hex.EncodeToString(b)
}

// trivial is a job that runs `true`, reserving 1 MiB so that the worker's
// allowance (in MiB) is its concurrency.
func trivial(user string) *job.Request {
	return &job.Request{ID: newID(), User: user, Name: "bench", Command: []string{"type:exec"}, Args: []string{"true"}, Memory: 1}
}

// benchEndToEnd measures sections 1 and 2 on one fleet with one worker
// whose allowance admits Concurrency trivial jobs at once.
func benchEndToEnd(ctx context.Context, cfg BenchConfig, rep *BenchReport) error {
	cfg.step("1/6 fork/exec floor: %d jobs at concurrency %d", cfg.Jobs, cfg.Concurrency)
	floor, err := forkExecFloor(ctx, filepath.Join(cfg.Dir, "floor"), cfg.Jobs, cfg.Concurrency)
	if err != nil {
		return err
	}
	rep.Floor = floor
	b, err := startTrivialFleet(ctx, cfg, filepath.Join(cfg.Dir, "e2e"), "")
	if err != nil {
		return err
	}
	defer b.close()
	c, w := b.c, b.w
	cfg.step("1/6 jinn: %d trivial jobs through %s at concurrency %d", cfg.Jobs, b.f.URL, cfg.Concurrency)
	if rep.Jinn, err = runTrivial(ctx, c, w, cfg.Jobs, cfg.Concurrency); err != nil {
		return err
	}
	cfg.step("1/6 jinn %.0f jobs/s, floor %.0f jobs/s", rep.Jinn.PerSec, rep.Floor.PerSec)
	for _, frac := range []float64{0.25, 0.5, 0.9} {
		rate := frac * rep.Jinn.PerSec
		cfg.step("2/6 submit→running at %.0f%% of max: %.0f jobs/s for %s", frac*100, rate, cfg.Level)
		lvl, err := openLoopLevel(ctx, c, w, rate, cfg.Level)
		if err != nil {
			return err
		}
		lvl.Fraction = frac
		cfg.step("2/6 p50 %s p99 %s p99.9 %s", lvl.Started.P50, lvl.Started.P99, lvl.Started.P999)
		rep.Levels = append(rep.Levels, lvl)
	}
	return nil
}

// benchOnRedis is run 1 again on a fleet whose Redis is redis-server.
func benchOnRedis(ctx context.Context, cfg BenchConfig, rep *BenchReport) error {
	_, name, url, stop, err := startBenchRedis(ctx, cfg, cfg.RedisServer)
	if err != nil {
		return err
	}
	defer stop()
	b, err := startTrivialFleet(ctx, cfg, filepath.Join(cfg.Dir, "e2e-redis"), url)
	if err != nil {
		return err
	}
	defer b.close()
	cfg.step("1/6 jinn on %s: %d trivial jobs", name, cfg.Jobs)
	if rep.JinnRedis, err = runTrivial(ctx, b.c, b.w, cfg.Jobs, cfg.Concurrency); err != nil {
		return err
	}
	cfg.step("1/6 jinn on %s: %.0f jobs/s", name, rep.JinnRedis.PerSec)
	return nil
}

// trivialFleet is the fleet of run 1: one worker whose allowance admits
// Concurrency trivial jobs at once, its client and its event watcher.
type trivialFleet struct {
	f *fleet.Fleet
	w *watcher
	c *client.Client
}

// startTrivialFleet starts it (on redisURL, or the embedded Redis) and runs
// a few jobs first, so that the measured ones do not pay for warming caches
// and connections.
func startTrivialFleet(ctx context.Context, cfg BenchConfig, dir, redisURL string) (*trivialFleet, error) {
	f, err := upBench(ctx, cfg, dir, redisURL, 1, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	b := &trivialFleet{f: f, w: newWatcher(f), c: client.New(f.URL)}
	if _, err := runTrivial(ctx, b.c, b.w, 20, cfg.Concurrency); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *trivialFleet) close() {
	b.w.close()
	b.f.Close(context.Background())
}

// forkExecFloor does a trivial job's work without jinn: a directory, its
// stdout and stderr files, fork/exec of true, wait.
func forkExecFloor(ctx context.Context, dir string, n, conc int) (Throughput, error) {
	bin, err := exec.LookPath("true")
	if err != nil {
		return Throughput{}, err
	}
	one := func(i int) error {
		d := filepath.Join(dir, fmt.Sprintf("job-%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		stdout, err := os.Create(filepath.Join(d, "stdout"))
		if err != nil {
			return err
		}
		defer stdout.Close()
		stderr, err := os.Create(filepath.Join(d, "stderr"))
		if err != nil {
			return err
		}
		defer stderr.Close()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Dir, cmd.Stdout, cmd.Stderr = d, stdout, stderr
		return cmd.Run()
	}
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	t := Throughput{Jobs: n}
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				err := one(i)
				mu.Lock()
				t.Done = append(t.Done, time.Since(start))
				if err != nil {
					t.Failed++
					firstErr = cmp(firstErr, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Elapsed = time.Since(start)
	t.PerSec = float64(n-t.Failed) / t.Elapsed.Seconds()
	if firstErr != nil && t.Failed == n {
		return t, fmt.Errorf("bench: the fork/exec floor failed: %w", firstErr)
	}
	return t, nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// watcher follows the status events of every job, so that the bench waits
// for jobs to finish without polling their records.
type watcher struct {
	mu      sync.Mutex
	final   map[string]chan struct{}
	ended   map[string]bool
	closeFn func()
}

func newWatcher(f *fleet.Fleet) *watcher {
	w := &watcher{final: map[string]chan struct{}{}, ended: map[string]bool{}}
	sub, err := f.Broker.SubscribeAllEvents(func(ev job.Event) {
		if !ev.Status.Terminal() {
			return
		}
		c := w.ch(ev.ID)
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.ended[ev.ID] { // a terminal event may come twice
			w.ended[ev.ID] = true
			close(c)
		}
	})
	w.closeFn = func() {}
	if err == nil {
		w.closeFn = func() { _ = sub.Unsubscribe() }
	}
	return w
}

// ch returns the channel closed when id ends.
func (w *watcher) ch(id string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.final[id]
	if !ok {
		c = make(chan struct{})
		w.final[id] = c
	}
	return c
}

func (w *watcher) close() { w.closeFn() }

// wait returns when id has ended. Events are best effort: after a quiet
// second it reads the record.
func (w *watcher) wait(ctx context.Context, c *client.Client, id string) (*job.Job, error) {
	ch := w.ch(id)
	for {
		select {
		case <-ch:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		j, err := c.Get(ctx, id)
		if err == nil && j.Status.Terminal() {
			return j, nil
		}
	}
}

// runTrivial runs n trivial jobs, conc at a time: each client submits one
// over HTTP and waits for its final status.
func runTrivial(ctx context.Context, c *client.Client, w *watcher, n, conc int) (Throughput, error) {
	user := benchUser("e2e")
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	t := Throughput{Jobs: n}
	var ids []string
	var each []time.Duration
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if int(next.Add(1)) > n {
					return
				}
				req := trivial(user)
				t0 := time.Now()
				_, err := c.Submit(ctx, req)
				if err == nil {
					_, err = w.wait(ctx, c, req.ID)
				}
				mu.Lock()
				each = append(each, time.Since(t0))
				t.Done = append(t.Done, time.Since(start))
				ids = append(ids, req.ID)
				if err != nil {
					t.Failed++
					firstErr = cmp(firstErr, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Elapsed = time.Since(start)
	if firstErr != nil {
		return t, fmt.Errorf("bench: trivial jobs: %w", firstErr)
	}
	finals, err := records(ctx, c, user)
	if err != nil {
		return t, err
	}
	var admit, wait, run []time.Duration
	for _, id := range ids {
		j, ok := finals[id]
		if !ok || j.Status != job.Succeeded {
			t.Failed++
			continue
		}
		if j.Created != nil && j.Queued != nil && j.Started != nil && j.Finished != nil {
			admit = append(admit, j.Queued.Sub(*j.Created))
			wait = append(wait, j.Started.Sub(*j.Queued))
			run = append(run, j.Finished.Sub(*j.Started))
		}
	}
	t.PerJob = percentiles(each)
	t.Phases = []Phase{
		{"admission: created → QUEUED", percentiles(admit)},
		{"QUEUED → RUNNING (pull, claim, INIT, directory, start)", percentiles(wait)},
		{"RUNNING → final status (the process, output archived)", percentiles(run)},
	}
	t.PerSec = float64(n-t.Failed) / t.Elapsed.Seconds()
	if t.Failed > 0 {
		return t, fmt.Errorf("bench: %d of %d trivial jobs did not succeed", t.Failed, n)
	}
	return t, nil
}

// records reads the jobs of user by id.
func records(ctx context.Context, c *client.Client, user string) (map[string]job.Job, error) {
	out := map[string]job.Job{}
	cursor := ""
	for {
		page, next, err := c.List(ctx, client.ListOptions{User: user, Limit: 1000, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("bench: list jobs of %s: %w", user, err)
		}
		for _, j := range page {
			out[j.ID] = j
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// openLoopLevel offers rate jobs a second for d, each sent at its due time
// whatever the earlier ones did, and measures from the due time to the
// RUNNING timestamp the worker recorded (no coordinated omission).
func openLoopLevel(ctx context.Context, c *client.Client, w *watcher, rate float64, d time.Duration) (LatencyLevel, error) {
	lvl := LatencyLevel{Rate: rate}
	if rate <= 0 {
		return lvl, errors.New("bench: no rate to offer (the throughput run measured none)")
	}
	user := benchUser("latency")
	interval := time.Duration(float64(time.Second) / rate)
	n := int(d / interval)
	type sent struct {
		id  string
		due time.Time
	}
	var mu sync.Mutex
	var all []sent
	var accept []time.Duration
	var firstErr error
	paced(ctx, time.Now(), interval, func(i int) bool { return i < n }, func(due time.Time) {
		req := trivial(user)
		_, err := c.Submit(ctx, req)
		lat := time.Since(due)
		if err == nil {
			_, err = w.wait(ctx, c, req.ID)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			firstErr = cmp(firstErr, err)
			return
		}
		all = append(all, sent{req.ID, due})
		accept = append(accept, lat)
	})
	if firstErr != nil {
		return lvl, fmt.Errorf("bench: open loop at %.0f/s: %w", rate, firstErr)
	}
	finals, err := records(ctx, c, user)
	if err != nil {
		return lvl, err
	}
	for _, s := range all {
		if j, ok := finals[s.id]; ok && j.Started != nil {
			lvl.samples = append(lvl.samples, j.Started.Sub(s.due))
		}
	}
	lvl.Sent = n
	lvl.Started = percentiles(lvl.samples)
	lvl.Accept = percentiles(accept)
	slices.Sort(lvl.samples)
	return lvl, nil
}
