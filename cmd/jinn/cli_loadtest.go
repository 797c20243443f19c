package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jinn-fleet/jinn/loadtest"
)

// autoscaleScenario holds the flags of `jinn loadtest --scenario autoscale`.
type autoscaleScenario struct {
	out, dir                 string
	peak                     float64
	ramp, steady, hold       time.Duration
	allowance, memory, touch int
	min, max                 int
}

// autoscaleScenarioFlags adds the autoscale scenario's flags to jinn loadtest.
func autoscaleScenarioFlags(fs *flag.FlagSet) *autoscaleScenario {
	a := &autoscaleScenario{}
	fs.StringVar(&a.out, "out", "", "--scenario autoscale: `directory` for the report (report.md, autoscale.png, samples.csv); default none")
	fs.StringVar(&a.dir, "scenario-dir", "", "--scenario autoscale: `directory` of the fleet's data and logs; default a temporary one")
	fs.Float64Var(&a.peak, "peak", 0.5, "--scenario autoscale: jobs a second at the peak")
	fs.DurationVar(&a.ramp, "ramp", 20*time.Second, "--scenario autoscale: time to climb to the peak")
	fs.DurationVar(&a.steady, "steady", 40*time.Second, "--scenario autoscale: time at the peak before the load stops")
	fs.DurationVar(&a.hold, "hold", 10*time.Second, "--scenario autoscale: how long each job holds its memory")
	fs.IntVar(&a.allowance, "worker-memory", 1024, "--scenario autoscale: MiB each worker gives to jobs")
	fs.IntVar(&a.memory, "job-memory", 400, "--scenario autoscale: MiB each job asks for")
	fs.IntVar(&a.touch, "touch", 64, "--scenario autoscale: MiB each job really holds")
	fs.IntVar(&a.min, "min-workers", 1, "--scenario autoscale: fewest workers")
	fs.IntVar(&a.max, "max-workers", 4, "--scenario autoscale: most workers")
	return a
}

// run starts jinn up --autoscale on this machine with short windows, loads it
// and reports; it fails when a job did not succeed.
func (a *autoscaleScenario) run(ctx context.Context, seed uint64) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("the autoscale scenario starts workers from the jinn binary: %w", err)
	}
	cfg := loadtest.AutoscaleConfig{Binary: bin, Dir: a.dir, Allowance: a.allowance, JobMemory: a.memory, Touch: a.touch,
		Hold: a.hold, Peak: a.peak, Ramp: a.ramp, Steady: a.steady, Seed: seed, Progress: os.Stderr}
	if a.min != 1 || a.max != 4 {
		cfg.Policy = loadtest.DefaultAutoscalePolicy()
		cfg.Policy.Min, cfg.Policy.Max = a.min, a.max
	}
	rep, err := loadtest.RunAutoscale(ctx, cfg)
	if err != nil {
		return err
	}
	rep.WriteSummary(os.Stdout)
	if a.out != "" {
		if err := rep.Write(a.out); err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
		fmt.Printf("report: %s/report.md\n", a.out)
	}
	if rep.Lost() > 0 || rep.DrainedFailed > 0 {
		return &exitError{code: 1}
	}
	return nil
}
