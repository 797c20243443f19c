package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jinn-fleet/jinn/loadtest"
)

// runLoadtest is `jinn loadtest`: load against a running jinn (--topology
// local, the default) or against a fleet of processes it starts on loopback
// (--topology cluster), optionally with a chaos schedule; it verifies that
// nothing was lost and no job ran twice at once, and exits 1 if it was.
func runLoadtest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn loadtest", flag.ContinueOnError)
	cfg := loadtest.Config{}
	fs.StringVar(&cfg.Server, "server", envString("JINN_SERVER", defaultServer), "intake `URL`s, comma separated (env JINN_SERVER)")
	fs.StringVar(&cfg.NATS, "nats", envString("JINN_NATS", "nats://127.0.0.1:4222"), "NATS `URL` for --via nats (env JINN_NATS)")
	fs.StringVar(&cfg.Via, "via", "http", "submit over http or onto jinn.submit (nats)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: jobs a second (0: closed loop)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "closed loop: concurrent submitters")
	fs.IntVar(&cfg.Jobs, "jobs", 0, "number of jobs")
	fs.DurationVar(&cfg.Duration, "duration", 0, "run for this long (when --jobs is 0)")
	shape := fs.String("shape", "true", "what each job does: true, sleep:D, sleep:uniform:D:D, sleep:exp:D, memhog:MiB:D")
	fs.IntVar(&cfg.Retries, "retries", 5, "retries of each job when its worker dies")
	fs.StringVar(&cfg.SinkDir, "sink", "", "`directory` where jobs record their attempts; default a temporary one")
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Minute, "how long to wait for the last jobs")
	seed := fs.Uint64("seed", 1, "seed of the job shapes and the chaos schedule")
	topology := fs.String("topology", "local", "local: a running jinn (--server); cluster: start 3 NATS servers, redis-server, 2 intakes, 2 schedulers and workers as processes on loopback")
	chaos := fs.String("chaos", "none", "fault schedule with --topology cluster: default or none")
	dir := fs.String("dir", "", "`directory` of the cluster's data and logs; default a temporary one")
	keep := fs.Bool("keep", false, "with --topology cluster: start the cluster, print its addresses and keep it running until interrupted (no load)")
	workers := fs.Int("workers", 3, "workers of the cluster topology")
	basePort := fs.Int("base-port", 24000, "first port of the cluster topology")
	ackWait := fs.Duration("ack-wait", 5*time.Second, "lease of a job attempt in the cluster topology")
	scenario := fs.String("scenario", "", "autoscale: start jinn up --autoscale here, ramp memory-hungry jobs up, hold, stop, and report the pool over time (cli_loadtest.go)")
	autoscale := autoscaleScenarioFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *scenario {
	case "":
	case "autoscale":
		return autoscale.run(ctx, *seed)
	default:
		return fmt.Errorf("--scenario %q: the scenarios are: autoscale", *scenario)
	}
	var err error
	if cfg.Shape, err = loadtest.ParseShape(*shape); err != nil {
		return err
	}
	cfg.Seed = *seed
	if cfg.SinkDir == "" {
		if cfg.SinkDir, err = os.MkdirTemp("", "jinn-sink-"); err != nil {
			return err
		}
	}
	var faults []loadtest.Fault
	var cluster *loadtest.Cluster
	if *topology == "cluster" {
		if *dir == "" {
			if *dir, err = os.MkdirTemp("", "jinn-cluster-"); err != nil {
				return err
			}
		}
		cc := loadtest.ClusterConfig{Dir: *dir, BasePort: *basePort, Workers: *workers, AckWait: *ackWait}
		fmt.Fprintf(os.Stderr, "starting the cluster topology in %s ...\n", *dir)
		if cluster, err = loadtest.StartCluster(ctx, cc); err != nil {
			return err
		}
		defer cluster.Stop()
		cfg.Server, cfg.NATS = strings.Join(cluster.Intakes, ","), cluster.NATSURL
		fmt.Printf("intakes: %s\nnats:    %s\nlogs:    %s\n", cfg.Server, cfg.NATS, filepath.Join(*dir, "logs"))
		if *keep {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			fmt.Println("the cluster runs until interrupted")
			<-sig
			return nil
		}
		length := cfg.Duration
		if length == 0 {
			length = 2 * time.Minute
		}
		if faults, err = loadtest.Schedule(*chaos, *seed, length, cc); err != nil {
			return err
		}
	} else if *topology != "local" {
		return fmt.Errorf("--topology %q: want local or cluster", *topology)
	}
	if cfg.Jobs == 0 && cfg.Duration == 0 {
		return errors.New("give --jobs or --duration")
	}
	cfg.Progress = os.Stderr
	var notes []string
	var wg sync.WaitGroup
	chaosCtx, stopChaos := context.WithCancel(ctx)
	if len(faults) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loadtest.Chaos(chaosCtx, cluster, faults, func(s string) { notes = append(notes, s) })
		}()
	}
	res, runErr := loadtest.Run(ctx, cfg)
	stopChaos()
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	if len(notes) > 0 {
		fmt.Println("faults:")
		for _, n := range notes {
			fmt.Println("  " + n)
		}
	}
	res.WriteTable(os.Stdout)
	if !res.OK() {
		return &exitError{code: 1}
	}
	return nil
}
