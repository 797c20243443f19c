// Command jinn is a job execution fleet on NATS JetStream: one binary whose
// subcommands are the roles of a fleet (up, intake, scheduler, worker, nats)
// and the verbs of its users (submit, status, logs, kill, jobs, apply, ...).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

func main() {
	verbs := allVerbs(clientVerbs)
	if len(os.Args) < 2 || os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help" {
		usage(verbs)
		return
	}
	v, ok := verbs[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "jinn: unknown command %q\n\n", os.Args[1])
		usage(verbs)
		os.Exit(2)
	}
	// The roles handle SIGINT and SIGTERM themselves (a drain, then a stop);
	// the client verbs stop on the first one.
	ctx := context.Background()
	if _, role := roleVerbs()[os.Args[1]]; !role {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
	}
	err := v.run(ctx, os.Args[2:])
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintf(os.Stderr, "jinn: %v\n", err)
		os.Exit(1)
	}
}

func usage(verbs map[string]verb) {
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "jinn runs jobs on a fleet of workers.\n\nusage: jinn <command> [flags] [args]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, verbs[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\n`jinn <command> -h` lists a command's flags; every flag can also be set by its JINN_* variable.")
}

// allVerbs are jinn's subcommands, with cv as its client verbs.
func allVerbs(cv map[string]verb) map[string]verb {
	verbs := roleVerbs()
	for k, v := range cv {
		verbs[k] = v
	}
	verbs["loadtest"] = verb{"load jinn and verify nothing is lost or run twice (optionally under chaos)", runLoadtest}
	verbs["bench"] = verb{"benchmark suite: each figure beside its floor, into docs/performance.md", runBench}
	verbs["drain"] = verb{"drain workers: each stops pulling, finishes its jobs, then exits", func(ctx context.Context, args []string) error { return reachHint(stdConsole().drain(ctx, args)) }}
	verbs["completion"] = verb{"print a shell completion script: jinn completion bash|zsh|fish", runCompletion} // cli_completion.go
	return verbs
}
