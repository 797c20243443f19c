package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/loadtest"
)

// runBench is `jinn bench`: the benchmark suite of package loadtest, each
// figure beside its floor, written into docs/performance.md and its plots.
func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn bench", flag.ContinueOnError)
	cfg := loadtest.BenchConfig{}
	out := fs.String("out", envString("JINN_BENCH_OUT", ""), "markdown `file` the report goes into (between its bench markers); empty prints it (env JINN_BENCH_OUT)")
	plots := fs.String("plots", envString("JINN_BENCH_PLOTS", ""), "`directory` of the plots; default <out without .md> (env JINN_BENCH_PLOTS)")
	fs.StringVar(&cfg.Dir, "dir", envString("JINN_BENCH_DIR", ""), "`directory` of the fleets' data; default a temporary one (env JINN_BENCH_DIR)")
	fs.IntVar(&cfg.Concurrency, "concurrency", envInt("JINN_BENCH_CONCURRENCY", 0), "trivial jobs at once, jinn's and the floor's; default 2 × cores (env JINN_BENCH_CONCURRENCY)")
	fs.IntVar(&cfg.Jobs, "jobs", envInt("JINN_BENCH_JOBS", 1500), "trivial jobs of each throughput run (env JINN_BENCH_JOBS)")
	fs.DurationVar(&cfg.Level, "level", envDuration("JINN_BENCH_LEVEL", 8*time.Second), "length of each open-loop latency level (env JINN_BENCH_LEVEL)")
	fs.DurationVar(&cfg.Window, "window", envDuration("JINN_BENCH_WINDOW", 4*time.Second), "length of each intake and producer run (env JINN_BENCH_WINDOW)")
	footprint := fs.Bool("footprint", envString("JINN_BENCH_FOOTPRINT", "true") == "true", "measure the RSS of jinn worker and jinn up started from this binary (env JINN_BENCH_FOOTPRINT)")
	cpuprofile := fs.String("cpuprofile", envString("JINN_BENCH_CPUPROFILE", ""), "write a CPU profile of the whole run (the in-process fleets included) to `file` (env JINN_BENCH_CPUPROFILE)")
	memprofile := fs.String("memprofile", envString("JINN_BENCH_MEMPROFILE", ""), "write a heap profile at the end to `file` (env JINN_BENCH_MEMPROFILE)")
	only := fs.String("only", envString("JINN_BENCH_ONLY", ""), "run only these `sections`, comma separated (1,2: end to end; 3,4: intake and producers; 5: scale; 6: footprint); default all (env JINN_BENCH_ONLY)")
	logLevel := fs.String("log-level", envString("JINN_LOG_LEVEL", "error"), "log `level` of the fleets under test (env JINN_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, f := range strings.FieldsFunc(*only, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 6 {
			return fmt.Errorf("--only %q: sections are 1 to 6", *only)
		}
		cfg.Only = append(cfg.Only, n)
	}
	cfg.Progress = os.Stderr
	cfg.Log = hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.LevelFromString(*logLevel), Output: os.Stderr})
	if *footprint {
		bin, err := os.Executable()
		if err != nil {
			return fmt.Errorf("the footprint runs this binary: %w", err)
		}
		cfg.Binary = bin
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := loadtest.RunBench(ctx, cfg)
	if err != nil {
		return err
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
		runtime.GC()
		err = pprof.WriteHeapProfile(f)
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
	}
	if *out == "" {
		rep.WriteMarkdown(os.Stdout, "")
		return nil
	}
	if *plots == "" {
		*plots = trimExt(*out)
	}
	if err := rep.WriteFiles(*out, *plots); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	rep.WriteMarkdown(os.Stdout, "")
	fmt.Printf("\nreport: %s, plots in %s\n", *out, *plots)
	return nil
}

func trimExt(p string) string {
	for i := len(p) - 1; i >= 0 && p[i] != '/'; i-- {
		if p[i] == '.' {
			return p[:i]
		}
	}
	return p
}
