package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jinn-fleet/jinn/job"
)

// pools is `jinn pools [NAME]`: the pools the autoscaler sizes, or one pool
// with its recent decisions.
func (c *console) pools(ctx context.Context, args []string) error {
	fs := c.newFlagSet("pools", "[--json] [-n N] [NAME]", "Lists the pools the autoscaler sizes: their size, load and last decision.\nWith NAME, shows that pool and its recent decisions with their reasons.")
	srv := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	n := fs.Int("n", 20, "decisions to show for one pool")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 1, "at most one pool name"); err != nil {
		return err
	}
	cl := srv.client()
	if len(pos) == 1 {
		p, err := cl.Pool(ctx, pos[0], *n)
		if err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(p)
		}
		return c.printPool(p)
	}
	list, err := cl.Pools(ctx, 0)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(orEmpty(list))
	}
	if len(list) == 0 {
		fmt.Fprintln(c.stdout, "no pool is autoscaled (start jinn up --autoscale, or jinn scheduler with --autoscale)")
		return nil
	}
	t := newTable(c.stdout, "POOL", "PROVIDER", "SIZE", "DESIRED", "STARTING", "DRAINING", "LOAD", "WAITING", "LAST", "AGE", "REASON")
	for _, p := range list {
		last, reason, in := "-", "-", job.ScaleInputs{}
		if p.Last != nil {
			last, reason, in = string(p.Last.Action)+"/"+p.Last.Rule, p.Last.Reason, p.Last.Inputs
			if p.Last.Error != "" {
				reason += " (error: " + p.Last.Error + ")"
			}
		}
		t.row(p.Name, dash(p.Provider), strconv.Itoa(p.Size), strconv.Itoa(p.Desired), strconv.Itoa(p.Starting),
			strconv.Itoa(len(p.Draining)), loadCell(in), waitingCell(in), last, c.age(&p.Updated), reason)
	}
	return t.flush()
}

func loadCell(in job.ScaleInputs) string {
	if in.Allowance == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%% of %d MiB", in.Load*100, in.Allowance)
}

func waitingCell(in job.ScaleInputs) string {
	if in.WaitingJobs == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%d MiB)", in.WaitingJobs, in.WaitingMemory)
}

func (c *console) printPool(p *job.Pool) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	pol := p.Policy
	line("pool", p.Name)
	line("provider", dash(p.Provider))
	draining := strconv.Itoa(len(p.Draining))
	if len(p.Draining) > 0 {
		draining += " (" + strings.Join(p.Draining, " ") + ")"
	}
	line("size", fmt.Sprintf("%d active, %d starting, %s draining; desired %d (min %d, max %d)",
		p.Size, p.Starting, draining, p.Desired, pol.Min, pol.Max))
	line("policy", fmt.Sprintf("up above %.0f%% for %s (cooldown %s, step %d); down below %.0f%% for %s (cooldown %s); warm-up %s",
		pol.High*100, pol.Window, pol.UpCooldown, pol.Step, pol.Low*100, pol.DownWindow, pol.DownCooldown, pol.WarmUp))
	line("clusters", dash(strings.Join(p.Clusters, ",")))
	if p.Last != nil {
		in := p.Last.Inputs
		line("load", fmt.Sprintf("%s (warm %.0f%%); reserved %d, used %d, free %d MiB", loadCell(in), in.WarmLoad*100, in.Reserved, in.Used, in.Free))
		line("waiting", fmt.Sprintf("%s, %d fit nowhere", waitingCell(in), in.Unplaced))
		line("now", fmt.Sprintf("%s/%s: %s", p.Last.Action, p.Last.Rule, p.Last.Reason))
		if p.Last.Error != "" {
			line("error", p.Last.Error)
		}
	}
	line("updated", c.clock(&p.Updated, longTime))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Decisions) == 0 {
		return nil
	}
	fmt.Fprintln(c.stdout)
	t := newTable(c.stdout, "TIME", "DECISION", "SIZE", "DESIRED", "LOAD", "WAITING", "DRAIN", "REASON")
	for _, d := range p.Decisions {
		reason := d.Reason
		if d.Error != "" {
			reason += " (error: " + d.Error + ")"
		}
		t.row(c.clock(&d.Time, cellTime), string(d.Action)+"/"+d.Rule, strconv.Itoa(d.Size), strconv.Itoa(d.Desired),
			loadCell(d.Inputs), waitingCell(d.Inputs), dash(d.Drain), reason)
	}
	return t.flush()
}
