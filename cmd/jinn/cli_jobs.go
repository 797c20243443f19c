package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/job"
)

func (c *console) status(ctx context.Context, args []string) error {
	fs := c.newFlagSet("status", "[--json] [--watch] ID", "Shows where a job stands; --watch re-draws it until the job ends.")
	srv := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print the job record as JSON")
	wf := addWatchFlags(fs, "until the job ends") // cli_watch.go
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, 1, "one job ID"); err != nil {
		return err
	}
	cl := srv.client()
	show := func() (bool, error) {
		j, err := cl.Get(ctx, pos[0])
		if err != nil {
			return false, err
		}
		if *asJSON {
			return j.Status.Terminal(), c.printJSON(j)
		}
		return j.Status.Terminal(), c.printJob(j)
	}
	if wf.on {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // ends the event stream
		return c.watch(ctx, wf, srv.jobEvents(ctx, pos[0]), show)
	}
	_, err = show()
	return err
}

// printJob writes a job as an aligned "key: value" block, leaving out what
// it does not have (yet).
func (c *console) printJob(j *job.Job) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 1, ' ', 0)
	line := func(key, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", key, value)
		}
	}
	status := string(j.Status)
	if j.KillRequested && !j.Status.Terminal() {
		status += " (kill requested)"
	}
	line("id", j.ID)
	line("name", j.Name)
	line("user", j.User)
	line("status", status)
	line("message", j.Message)
	line("cluster", j.Cluster)
	line("command", j.Command)
	line("worker", j.Worker)
	if j.Attempt > 0 {
		line("attempt", strconv.Itoa(j.Attempt))
	}
	if j.ExitCode != nil {
		line("exit code", strconv.Itoa(*j.ExitCode))
	}
	if j.Memory > 0 {
		mem := fmt.Sprintf("%d MiB", j.Memory)
		if j.Peak > 0 {
			mem += fmt.Sprintf(" (peak %d MiB)", j.Peak)
		}
		line("memory", mem)
	}
	for _, t := range []struct {
		key string
		at  *time.Time
	}{{"created", j.Created}, {"started", j.Started}, {"finished", j.Finished}} {
		if t.at != nil {
			line(t.key, c.clock(t.at, longTime))
		}
	}
	if j.Started != nil {
		switch {
		case j.Finished != nil:
			line("duration", j.Finished.Sub(*j.Started).Round(time.Millisecond).String())
		case !j.Status.Terminal():
			line("duration", c.now().Sub(*j.Started).Round(time.Second).String()+" so far")
		}
	}
	return tw.Flush()
}

func (c *console) logs(ctx context.Context, args []string) error {
	fs := c.newFlagSet("logs", "[-f] [--stderr] ID", "Prints a job's stdout, or its stderr.")
	srv := serverFlags(fs)
	var follow bool
	fs.BoolVar(&follow, "f", false, "follow: print output as the job writes it, until it ends")
	fs.BoolVar(&follow, "follow", false, "same as -f")
	stderr := fs.Bool("stderr", false, "print stderr instead of stdout")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, 1, "one job ID"); err != nil {
		return err
	}
	stream := client.Stdout
	if *stderr {
		stream = client.Stderr
	}
	rc, err := srv.client().Logs(ctx, pos[0], stream, follow)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(c.stdout, rc); err != nil {
		return fmt.Errorf("%s of job %s: %w", stream, pos[0], err)
	}
	return nil
}

func (c *console) kill(ctx context.Context, args []string) error {
	fs := c.newFlagSet("kill", "[--json] ID...", "Kills jobs. A job that is running is killed by its worker shortly after.")
	srv := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print the records of the jobs as a JSON list")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, -1, "at least one job ID"); err != nil {
		return err
	}
	cl := srv.client()
	var errs []error
	killed := []*job.Job{}
	for _, id := range pos {
		j, err := cl.Kill(ctx, id)
		switch {
		case err != nil:
			errs = append(errs, err)
		case *asJSON:
			killed = append(killed, j)
		case j.Status == job.Killed:
			fmt.Fprintf(c.stdout, "killed %s\n", j.ID)
		default:
			fmt.Fprintf(c.stdout, "kill requested for %s (%s)\n", j.ID, j.Status)
		}
	}
	if *asJSON {
		if err := c.printJSON(killed); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *console) jobs(ctx context.Context, args []string) error {
	fs := c.newFlagSet("jobs", "[flags]", "Lists jobs, newest first.")
	srv := serverFlags(fs)
	var opts client.ListOptions
	fs.StringVar(&opts.User, "user", "", "only the jobs of `user`")
	status := fs.String("status", "", "only jobs in `status` (RUNNING, FAILED, ...)")
	fs.StringVar(&opts.Cluster, "cluster", "", "only jobs on `cluster`")
	fs.IntVar(&opts.Limit, "limit", 0, "jobs per page (default: the server's)")
	fs.StringVar(&opts.Cursor, "cursor", "", "start at this `cursor` (printed after a page)")
	all := fs.Bool("all", false, "follow the cursors to the last page")
	asJSON := fs.Bool("json", false, `print {"jobs":[...],"next":"..."} as JSON`)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	if *status != "" {
		if opts.Status, err = job.ParseStatus(*status); err != nil {
			return err
		}
	}
	cl := srv.client()
	var list []job.Job
	var next string
	for {
		page, n, err := cl.List(ctx, opts)
		if err != nil {
			return err
		}
		list = append(list, page...)
		next = n
		if !*all || next == "" {
			break
		}
		if next == opts.Cursor {
			return fmt.Errorf("list jobs: the server returned cursor %q twice", next)
		}
		opts.Cursor = next
	}
	if *asJSON {
		if list == nil {
			list = []job.Job{}
		}
		return c.printJSON(struct {
			Jobs []job.Job `json:"jobs"`
			Next string    `json:"next"`
		}{list, next})
	}
	t := newTable(c.stdout, "ID", "NAME", "USER", "STATUS", "CLUSTER", "COMMAND", "ATTEMPT", "EXIT", "CREATED", "AGE")
	for _, j := range list {
		exit := "-"
		if j.ExitCode != nil {
			exit = strconv.Itoa(*j.ExitCode)
		}
		t.row(j.ID, dash(j.Name), dash(j.User), string(j.Status), dash(j.Cluster), dash(j.Command),
			strconv.Itoa(j.Attempt), exit, c.clock(j.Created, cellTime), c.age(j.Created))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(c.stderr, "more jobs: add --cursor %s, or use --all\n", shellQuote(next))
	}
	return nil
}

// shellQuote is used in messages that suggest a command line.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>()*?[]#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
