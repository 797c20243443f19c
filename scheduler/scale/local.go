package scale

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LocalConfig of the local provider.
type LocalConfig struct {
	// Binary is the jinn executable the workers run. Required: `jinn up`
	// gives its own (os.Executable), tests one they built.
	Binary string
	// Args are the flags every worker gets (--nats, --redis, --archive,
	// --job-memory, ...); the provider adds --pool, --id and --data-dir.
	Args []string
	// DataDir holds a directory per worker, <DataDir>/<id>/: its job
	// directories and its log, worker.log. Required.
	DataDir string
	// Env is added to this process's environment for the workers.
	Env []string
	// Log receives the provider's own lines. Default: none.
	Log hclog.Logger
}

// Local runs the workers of pools as child processes `jinn worker` of this
// process. A worker is started in its own process group (a Ctrl-C at the
// terminal reaches jinn up, not its workers) and gets SIGTERM when this
// process dies, so that it drains instead of living on unseen.
type Local struct {
	cfg LocalConfig
	log hclog.Logger

	mu      sync.Mutex
	procs   map[string]*proc // by worker id
	changed chan struct{}    // closed and replaced at every start and exit
	closed  bool
}

type proc struct {
	id, pool string
	cmd      *exec.Cmd
	started  time.Time
	exited   chan struct{}
	err      error // of Wait, once exited
}

// NewLocal returns a local provider.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Binary == "" {
		return nil, errors.New("local workers: the path of the jinn binary is required")
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		return nil, fmt.Errorf("local workers: jinn binary: %w", err)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("local workers: a data directory is required")
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	return &Local{cfg: cfg, log: cfg.Log.Named("local-workers"), procs: map[string]*proc{}, changed: make(chan struct{})}, nil
}

// Name is "local".
func (l *Local) Name() string { return "local" }

// SetDesired starts workers until pool has n running.
func (l *Local) SetDesired(_ context.Context, pool string, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("local workers: stopped")
	}
	live := 0
	for _, p := range l.procs {
		if p.pool == pool && !p.done() {
			live++
		}
	}
	for ; live < n; live++ {
		if err := l.start(pool); err != nil {
			return err
		}
	}
	return nil
}

// start runs one worker; l.mu is held.
func (l *Local) start(pool string) error {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := pool + "-" + hex.EncodeToString(b)
	dir := filepath.Join(l.cfg.DataDir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("local worker %s: %w", id, err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "worker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("local worker %s: log: %w", id, err)
	}
	args := append([]string{"worker"}, l.cfg.Args...)
	args = append(args, "--pool", pool, "--id", id, "--data-dir", dir)
	cmd := exec.Command(l.cfg.Binary, args...)
	cmd.Env = append(os.Environ(), l.cfg.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start local worker %s (%s): %w", id, l.cfg.Binary, err)
	}
	p := &proc{id: id, pool: pool, cmd: cmd, started: time.Now(), exited: make(chan struct{})}
	l.procs[id] = p
	l.signal()
	l.log.Info("started a worker", "pool", pool, "worker", id, "pid", cmd.Process.Pid, "log", logf.Name())
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		l.mu.Lock()
		p.err = err
		close(p.exited)
		l.signal()
		l.mu.Unlock()
		if err != nil {
			l.log.Warn("worker exited", "worker", id, "error", err)
		} else {
			l.log.Info("worker exited", "worker", id)
		}
	}()
	return nil
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (l *Local) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Changed returns a channel closed at the next start or exit of a worker.
func (l *Local) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Remove waits (until ctx ends) for a drained worker to exit and forgets it.
func (l *Local) Remove(ctx context.Context, _ string, worker string) error {
	l.mu.Lock()
	p := l.procs[worker]
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return fmt.Errorf("local worker %s has not exited yet (it finishes its jobs first): %w", worker, ctx.Err())
	}
	l.mu.Lock()
	delete(l.procs, worker)
	l.mu.Unlock()
	return nil
}

// List returns the workers of pool, oldest first.
func (l *Local) List(_ context.Context, pool string) ([]Instance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Instance
	for _, p := range l.procs {
		if p.pool != pool {
			continue
		}
		in := Instance{ID: p.id, State: "running", Live: true, Started: p.started}
		if p.done() {
			in.State, in.Live = "exited", false
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// Close stops every worker: SIGTERM drains them (running jobs finish); when
// ctx ends first, a second SIGTERM makes them hand their jobs back, and a
// worker still there 5 seconds later is killed.
func (l *Local) Close(ctx context.Context) {
	l.mu.Lock()
	l.closed = true
	var live []*proc
	for _, p := range l.procs {
		if !p.done() {
			live = append(live, p)
		}
	}
	l.mu.Unlock()
	for _, p := range live {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range live {
		select {
		case <-p.exited:
			continue
		case <-ctx.Done():
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			l.log.Warn("worker did not stop; killing it", "worker", p.id)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
}
