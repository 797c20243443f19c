package main

import (
	"context"
	"fmt"

	"github.com/jinn-fleet/jinn/job"
)

// drain asks workers to drain: each stops pulling, finishes its running jobs,
// then exits. A worker's own SIGTERM does the same.
func (c *console) drain(ctx context.Context, args []string) error {
	fs := c.newFlagSet("drain", "[--json] WORKER...", "Asks workers to drain: each stops pulling jobs, finishes the ones it runs, then exits.\n`jinn workers` lists the live workers.")
	srv := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print the workers as a JSON list")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, -1, "one or more worker IDs"); err != nil {
		return err
	}
	cl := srv.client()
	failed := 0
	drained := []*job.Worker{}
	for _, id := range pos {
		w, err := cl.DrainWorker(ctx, id)
		if err != nil {
			fmt.Fprintf(c.stderr, "jinn: %v\n", err)
			failed++
			continue
		}
		if *asJSON {
			drained = append(drained, w)
			continue
		}
		fmt.Fprintf(c.stdout, "%s\t%s, running %d jobs\n", w.ID, w.State, len(w.Jobs))
	}
	if *asJSON {
		if err := c.printJSON(drained); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}
