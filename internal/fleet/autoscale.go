package fleet

import (
	"errors"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/scheduler/scale"
	"github.com/jinn-fleet/jinn/worker"
)

// Autoscale makes Up run its workers as child processes, `jinn worker`, of
// one pool whose size the leader's autoscaler drives between Policy.Min and
// Policy.Max (`jinn up --autoscale`).
type Autoscale struct {
	// Binary is the jinn executable the workers run. Required: jinn up gives
	// os.Executable(), tests a binary they built.
	Binary string
	// Pool of the workers. Default "default".
	Pool string
	// Policy says when the pool grows and shrinks; see job.ScalePolicy.
	Policy job.ScalePolicy
	// Interval between two decisions. Default 10s.
	Interval time.Duration
	// Allowance (MiB) of each worker. Default 80% of the machine's memory
	// divided by Policy.Max, so that the largest pool fits the machine.
	Allowance int
	// LogLevel of the workers (their logs are <data>/worker/<id>/worker.log).
	// Default info.
	LogLevel string
	// Args are more flags for every worker.
	Args []string
}

// startAutoscale prepares the local provider and the autoscaler duty when
// cfg.Autoscale is set; the leader runs the duty.
func (f *Fleet) startAutoscale(cfg Config) ([]scheduler.Duty, error) {
	a := cfg.Autoscale
	if a == nil {
		return nil, nil
	}
	if a.Binary == "" {
		return nil, errors.New("autoscale: the path of the jinn binary is required")
	}
	if a.Pool == "" {
		a.Pool = "default"
	}
	if a.Allowance <= 0 {
		a.Allowance = worker.DefaultAllowance() / max(a.Policy.WithDefaults().Max, 1)
	}
	if a.LogLevel == "" {
		a.LogLevel = "info"
	}
	args := []string{"--nats", f.NATSURL, "--redis", f.RedisURL, "--archive", cfg.Archive,
		"--job-memory", strconv.Itoa(a.Allowance), "--log-level", a.LogLevel}
	dur := func(flag string, d time.Duration) {
		if d > 0 {
			args = append(args, flag, d.String())
		}
	}
	dur("--ack-wait", cfg.AckWait)
	dur("--heartbeat", cfg.Heartbeat)
	dur("--kill-grace", cfg.KillGrace)
	dur("--reserve-after", cfg.ReserveAfter)
	if cfg.Enforce != "" {
		args = append(args, "--enforce", cfg.Enforce)
	}
	args = append(args, cfg.Security.args()...) // security.go
	args = append(args, a.Args...)
	local, err := scale.NewLocal(scale.LocalConfig{Binary: a.Binary, Args: args, DataDir: filepath.Join(cfg.DataDir, "worker"), Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	as, err := scheduler.NewAutoscaler(scheduler.AutoscaleConfig{
		Pools:    []scheduler.AutoscalePool{{Name: a.Pool, Policy: a.Policy, Provider: local}},
		Interval: a.Interval,
	}, f.Broker, f.Store, cfg.Log)
	if err != nil {
		return nil, err
	}
	f.LocalWorkers, f.Autoscaler = local, as
	return []scheduler.Duty{as}, nil
}
