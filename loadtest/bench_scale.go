package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/scheduler/scale"
	"github.com/jinn-fleet/jinn/store"
)

// ScaleRun is the scale simulation of one fleet size.
type ScaleRun struct {
	Workers int
	// Heartbeats a second that Redis took (each one SET + ZADD in one
	// round trip), and the Redis commands a second that makes.
	HeartbeatsPerSec, RedisOpsPerSec float64
	// Tick times of the leader's duties: median and slowest of Ticks.
	Ticks                  int
	Autoscale, AutoscaleMx time.Duration
	Reap, ReapMx           time.Duration
	// AllocPerTick is what one autoscaler plus reaper tick allocates.
	AllocPerTick uint64
	// RedisMemory is Redis's used_memory with the simulated fleet in it
	// (0 when the embedded Redis cannot say).
	RedisMemory int64
}

// Footprint of jinn's processes.
type Footprint struct {
	WorkerRSS int64 // bytes, an idle `jinn worker`
	// WorkerAnon and WorkerFile split WorkerRSS: the heap and stacks, and
	// the pages of the binary (and other files) it touched.
	WorkerAnon, WorkerFile int64
	UpRSS                  int64 // bytes, an idle `jinn up` (one worker)
	// PerJob is what `jinn up`'s RSS grows by per running job (a sleep;
	// the job's own process is not counted), over Running jobs.
	PerJob  int64
	Running int
}

// simProvider is a provider that has every simulated worker and does
// nothing.
type simProvider struct{ ids []string }

func (p *simProvider) Name() string                                  { return "simulated" }
func (p *simProvider) SetDesired(context.Context, string, int) error { return nil }
func (p *simProvider) Remove(context.Context, string, string) error  { return nil }
func (p *simProvider) List(context.Context, string) ([]scale.Instance, error) {
	out := make([]scale.Instance, len(p.ids))
	for i, id := range p.ids {
		out[i] = scale.Instance{ID: id, State: "running", Live: true}
	}
	return out, nil
}

// benchRedis starts the Redis of the simulation: a redis-server child when
// there is one (what a fleet runs), else the embedded one.
func benchRedis(ctx context.Context, cfg BenchConfig) (redis.UniversalClient, string, func(), error) {
	rdb, name, _, stop, err := startBenchRedis(ctx, cfg, cfg.RedisServer)
	return rdb, name, stop, err
}

// startBenchRedis starts redis-server from bin, or the embedded Redis when
// bin is empty, and returns a client, its name and its URL.
func startBenchRedis(ctx context.Context, cfg BenchConfig, bin string) (redis.UniversalClient, string, string, func(), error) {
	if bin != "" {
		port, err := freePort()
		if err != nil {
			return nil, "", "", nil, err
		}
		cmd := exec.CommandContext(ctx, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", cfg.Dir)
		if err := cmd.Start(); err != nil {
			return nil, "", "", nil, fmt.Errorf("bench: start %s: %w", bin, err)
		}
		stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
		rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), PoolSize: 32})
		for try := 0; ; try++ {
			if err := rdb.Ping(ctx).Err(); err == nil {
				break
			} else if try == 100 {
				stop()
				return nil, "", "", nil, fmt.Errorf("bench: redis-server did not answer: %w", err)
			}
			time.Sleep(50 * time.Millisecond) // waiting on another process that has no event to give
		}
		out, _ := exec.CommandContext(ctx, bin, "--version").Output()
		version := "redis-server"
		for _, f := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				version += " " + v
			}
		}
		return rdb, version, fmt.Sprintf("redis://127.0.0.1:%d", port), func() { _ = rdb.Close(); stop() }, nil
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, "", "", nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), PoolSize: 32})
	return rdb, "embedded (miniredis)", "redis://" + m.Addr(), func() { _ = rdb.Close(); m.Close() }, nil
}

// benchScale simulates fleets of cfg.Simulated workers: their heartbeats,
// one active job each, and the leader's autoscaler and reaper ticks.
func benchScale(ctx context.Context, cfg BenchConfig, rep *BenchReport) error {
	rdb, name, stop, err := benchRedis(ctx, cfg)
	if err != nil {
		return err
	}
	defer stop()
	rep.ScaleRedis = name
	ns, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(cfg.Dir, "scale-nats")}, cfg.Log)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	b, err := broker.Connect(ctx, broker.Config{URL: ns.ClientURL(), Name: "bench-scale"}, cfg.Log)
	if err != nil {
		return err
	}
	defer b.Close()
	for _, n := range cfg.Simulated {
		cfg.step("5/6 scale: %d simulated workers on %s", n, name)
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			return err
		}
		run, err := simulate(ctx, cfg, b, rdb, n)
		if err != nil {
			return err
		}
		cfg.step("5/6 %d workers: %.0f heartbeats/s, autoscaler tick %s, reaper tick %s", n, run.HeartbeatsPerSec, run.Autoscale, run.Reap)
		rep.Scale = append(rep.Scale, run)
	}
	return nil
}

func simulate(ctx context.Context, cfg BenchConfig, b *broker.Broker, rdb redis.UniversalClient, n int) (ScaleRun, error) {
	st := store.New(rdb, store.Config{})
	run := ScaleRun{Workers: n, Ticks: 5}
	now := time.Now()
	workers := make([]job.Worker, n)
	ids := make([]string, n)
	for i := range workers {
		ids[i] = fmt.Sprintf("sim-%05d", i)
		workers[i] = job.Worker{ID: ids[i], Pool: "default", Host: "sim", Clusters: []string{"local"}, Allowance: 1000,
			Reserved: 450, Jobs: []string{"job-" + ids[i]}, State: job.WorkerActive, Started: now.Add(-time.Hour), Heartbeat: now}
	}
	// Each simulated worker's one running job, as the reaper scans them.
	if err := parallel(ctx, n, func(i int) error {
		_, err := st.Record(ctx, &job.Job{ID: "job-" + ids[i], User: "sim", Memory: 450,
			Request: &job.Request{ID: "job-" + ids[i], User: "sim", Command: []string{"type:exec"}, Args: []string{"true"}}})
		return err
	}); err != nil {
		return run, fmt.Errorf("bench: record simulated jobs: %w", err)
	}
	const rounds = 3
	start := time.Now()
	for range rounds {
		if err := parallel(ctx, n, func(i int) error { return st.Heartbeat(ctx, &workers[i], time.Hour) }); err != nil {
			return run, fmt.Errorf("bench: simulated heartbeats: %w", err)
		}
	}
	el := time.Since(start).Seconds()
	run.HeartbeatsPerSec = float64(rounds*n) / el
	run.RedisOpsPerSec = 2 * run.HeartbeatsPerSec

	pol := job.ScalePolicy{Min: 1, Max: 2 * n, High: 0.6, Low: 0.3, Window: time.Minute, DownWindow: 10 * time.Minute,
		UpCooldown: 2 * time.Minute, DownCooldown: 5 * time.Minute, WarmUp: time.Minute, Step: 1, Gap: time.Minute}
	as, err := scheduler.NewAutoscaler(scheduler.AutoscaleConfig{
		Pools: []scheduler.AutoscalePool{{Name: "default", Policy: pol, Provider: &simProvider{ids: ids}, Clusters: []string{"local"}}},
	}, b, st, cfg.Log)
	if err != nil {
		return run, err
	}
	reaper := scheduler.NewReaper(scheduler.ReaperConfig{}, st, b, nil, nil, cfg.Log)
	lead := scheduler.Lead{Token: 1}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var at, rt []time.Duration
	for range run.Ticks {
		t0 := time.Now()
		if err := as.Tick(ctx, lead); err != nil {
			return run, fmt.Errorf("bench: autoscaler tick over %d workers: %w", n, err)
		}
		t1 := time.Now()
		if err := reaper.Tick(ctx, lead); err != nil {
			return run, fmt.Errorf("bench: reaper tick over %d workers: %w", n, err)
		}
		at, rt = append(at, t1.Sub(t0)), append(rt, time.Since(t1))
	}
	runtime.ReadMemStats(&ms1)
	run.AllocPerTick = (ms1.TotalAlloc - ms0.TotalAlloc) / uint64(run.Ticks)
	slices.Sort(at)
	slices.Sort(rt)
	run.Autoscale, run.AutoscaleMx = at[len(at)/2], at[len(at)-1]
	run.Reap, run.ReapMx = rt[len(rt)/2], rt[len(rt)-1]
	if info, err := rdb.Info(ctx, "memory").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				run.RedisMemory, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return run, nil
}

// parallel calls fn(0..n-1) from 32 goroutines.
func parallel(ctx context.Context, n int, fn func(int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n && ctx.Err() == nil; i += 32 {
				if err := fn(i); err != nil {
					errs[g] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// benchFootprint measures section 6 with the jinn binary.
func benchFootprint(ctx context.Context, cfg BenchConfig, rep *BenchReport) error {
	cfg.step("6/6 footprint of an idle jinn worker")
	dir := filepath.Join(cfg.Dir, "footprint")
	ns, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(dir, "nats")}, cfg.Log)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return err
	}
	defer m.Close()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	st := store.New(rdb, store.Config{})
	wk := exec.CommandContext(ctx, cfg.Binary, "worker", "--id", "bench-idle", "--nats", ns.ClientURL(), "--redis", "redis://"+m.Addr(),
		"--data-dir", filepath.Join(dir, "worker"), "--archive", filepath.Join(dir, "archive"), "--log-level", "warn")
	wk.Stdout, wk.Stderr = os.Stderr, os.Stderr
	if err := wk.Start(); err != nil {
		return fmt.Errorf("bench: start jinn worker: %w", err)
	}
	defer stopChild(wk)
	if err := until(ctx, 30*time.Second, func() bool { _, err := st.Worker(ctx, "bench-idle"); return err == nil }); err != nil {
		return fmt.Errorf("bench: jinn worker sent no heartbeat: %w", err)
	}
	settle(ctx, 3*time.Second)
	if rep.Footprint.WorkerRSS, err = vmRSS(wk.Process.Pid); err != nil {
		return err
	}
	status := fmt.Sprintf("/proc/%d/status", wk.Process.Pid)
	if kb, err := procField(status, "RssAnon:"); err == nil {
		rep.Footprint.WorkerAnon = kb * 1024
	}
	if kb, err := procField(status, "RssFile:"); err == nil {
		rep.Footprint.WorkerFile = kb * 1024
	}
	stopChild(wk)

	cfg.step("6/6 footprint of jinn up, idle and with running jobs")
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	up := exec.CommandContext(ctx, cfg.Binary, "up", "--data-dir", filepath.Join(dir, "up"), "--listen", addr,
		"--nats-listen", "127.0.0.1:-1", "--log-level", "warn")
	up.Env = append(os.Environ(), "JINN_REDIS=", "JINN_NATS=")
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	if err := up.Start(); err != nil {
		return fmt.Errorf("bench: start jinn up: %w", err)
	}
	defer stopChild(up)
	c := client.New("http://" + addr)
	if err := until(ctx, 30*time.Second, func() bool { _, _, err := c.List(ctx, client.ListOptions{Limit: 1}); return err == nil }); err != nil {
		return fmt.Errorf("bench: jinn up did not answer: %w", err)
	}
	settle(ctx, 3*time.Second)
	idle, err := vmRSS(up.Process.Pid)
	if err != nil {
		return err
	}
	rep.Footprint.UpRSS = idle
	const running = 20
	user := benchUser("footprint")
	var ids []string
	for range running {
		req := &job.Request{ID: newID(), User: user, Command: []string{"type:exec"}, Args: []string{"sleep", "120"}, Memory: 1}
		if _, err := c.Submit(ctx, req); err != nil {
			return err
		}
		ids = append(ids, req.ID)
	}
	defer func() {
		for _, id := range ids {
			_, _ = c.Kill(context.WithoutCancel(ctx), id)
		}
	}()
	err = until(ctx, 30*time.Second, func() bool {
		recs, err := records(ctx, c, user)
		if err != nil {
			return false
		}
		n := 0
		for _, j := range recs {
			if j.Status == job.Running {
				n++
			}
		}
		return n == running
	})
	if err != nil {
		return fmt.Errorf("bench: %d sleep jobs did not all start: %w", running, err)
	}
	settle(ctx, 3*time.Second)
	busy, err := vmRSS(up.Process.Pid)
	if err != nil {
		return err
	}
	rep.Footprint.Running, rep.Footprint.PerJob = running, (busy-idle)/running
	return nil
}

// until checks ok every 100 ms until it holds or d has passed: the process
// it waits on is another one and tells nothing when it is ready.
func until(ctx context.Context, d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// settle lets a process's memory settle after start-up (GC, lazy pages)
// before its RSS is read: a measured delay, not a synchronisation.
func settle(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// stopChild stops a role with SIGTERM (it drains), then SIGKILL after 15s.
func stopChild(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// vmRSS reads a process's resident set in bytes from /proc.
func vmRSS(pid int) (int64, error) {
	kb, err := procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
	if err != nil {
		return 0, fmt.Errorf("bench: RSS of %d: %w", pid, err)
	}
	return kb * 1024, nil
}

func procField(path, field string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}

func memTotalMiB() int {
	kb, err := procField("/proc/meminfo", "MemTotal:")
	if err != nil {
		return 0
	}
	return int(kb / 1024)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
