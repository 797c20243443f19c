package scale

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ExecConfig of the exec provider.
type ExecConfig struct {
	// Command is run with sh -c after its placeholders are replaced:
	// {pool}, {desired}, {action} (set or remove) and {worker} (the drained
	// worker, for remove; empty for set). The same values are in the
	// environment as JINN_POOL, JINN_DESIRED, JINN_ACTION and JINN_WORKER.
	// Pool and worker names are [a-z0-9_-] only, so they are safe in a shell
	// word. Required.
	//
	// "set" asks for an absolute size, to raise the pool or to say again
	// what a new leader wants; a command that would stop workers to reach a
	// lower size must not (workers leave by "remove", after their drain).
	Command string
	// Timeout of one run. Default 1m.
	Timeout time.Duration
	Log     hclog.Logger
}

// Exec runs an operator's command to size pools (a script that calls a cloud
// API, kubectl scale, ...).
type Exec struct {
	cfg ExecConfig
	log hclog.Logger

	mu      sync.Mutex
	desired map[string]int // the last size asked per pool, for remove
}

// NewExec returns an exec provider.
func NewExec(cfg ExecConfig) (*Exec, error) {
	if strings.TrimSpace(cfg.Command) == "" {
		return nil, errors.New("exec provider: a command is required, e.g. '/usr/local/bin/scale.sh {pool} {desired}'")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	return &Exec{cfg: cfg, log: cfg.Log.Named("scale-exec"), desired: map[string]int{}}, nil
}

// Name is "exec".
func (e *Exec) Name() string { return "exec" }

// SetDesired runs the command with action set.
func (e *Exec) SetDesired(ctx context.Context, pool string, n int) error {
	if err := e.run(ctx, pool, "set", n, ""); err != nil {
		return err
	}
	e.mu.Lock()
	e.desired[pool] = n
	e.mu.Unlock()
	return nil
}

// Remove runs the command with action remove, the drained worker and the size
// after its removal (the last size asked, less one).
func (e *Exec) Remove(ctx context.Context, pool, worker string) error {
	e.mu.Lock()
	n := max(e.desired[pool]-1, 0)
	e.mu.Unlock()
	if err := e.run(ctx, pool, "remove", n, worker); err != nil {
		return err
	}
	e.mu.Lock()
	e.desired[pool] = n
	e.mu.Unlock()
	return nil
}

// List cannot tell the workers: it returns ErrNoList.
func (e *Exec) List(context.Context, string) ([]Instance, error) { return nil, ErrNoList }

func (e *Exec) run(ctx context.Context, pool, action string, n int, worker string) error {
	line := strings.NewReplacer("{pool}", pool, "{desired}", strconv.Itoa(n), "{action}", action, "{worker}", worker).Replace(e.cfg.Command)
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Env = append(os.Environ(), "JINN_POOL="+pool, "JINN_DESIRED="+strconv.Itoa(n), "JINN_ACTION="+action, "JINN_WORKER="+worker)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if len(text) > 2048 {
		text = "..." + text[len(text)-2048:]
	}
	if err != nil {
		return fmt.Errorf("scale command %q (%s %s to %d): %w; its output: %s", line, action, pool, n, err, text)
	}
	e.log.Info("scale command ran", "pool", pool, "action", action, "desired", n, "worker", worker, "took", time.Since(start).Round(time.Millisecond), "output", text)
	return nil
}
