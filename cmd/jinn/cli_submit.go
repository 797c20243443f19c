package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/job"
)

// recordPatience is how long submit --nats --wait waits for a scheduler to
// record the job it published before it gives up.
var recordPatience = time.Minute

func (c *console) submit(ctx context.Context, args []string) error {
	fs := c.newFlagSet("submit", "[flags] [--] ARGS...",
		`Submits a job and prints its id. With the default command (type:exec)
ARGS are the argv of the job's process; otherwise they follow the command's
executable. --wait streams the job's stdout and stderr and exits with its
exit code (124 when it timed out, 1 when it ended without one).`)
	srv := serverFlags(fs)
	var (
		req      job.Request
		clusters criteriaFlag
		tags     listFlag
		timeout  secondsFlag
		env      = envFlag{}
	)
	fs.StringVar(&req.Name, "name", "", "job `name`")
	fs.StringVar(&req.User, "user", envString("JINN_USER", os.Getenv("USER")), "`user` the job is for (env JINN_USER, else USER)")
	command := fs.String("command", "type:exec", "`tags` of the command to run, comma separated")
	fs.Var(&clusters, "cluster", "cluster `tags`, comma separated; repeat for fallbacks in priority order (default: any cluster)")
	fs.IntVar(&req.Memory, "memory", 0, "memory in `MiB` (default: the command's, then jinn's)")
	fs.StringVar(&req.Notify, "notify", "", "webhook `URL` told of the job's final status (signed POST)")
	fs.Var(&timeout, "timeout", "time `limit`: seconds, or a duration like 10m (default: none)")
	retries := fs.Int("retries", job.DefaultRetries, "more `attempts` when the job's worker dies under it")
	fs.Var(env, "env", "`K=V` to set in the job's environment; repeatable")
	fs.Var(&tags, "tag", "`tag` of the job; repeatable")
	fs.StringVar(&req.ID, "id", "", "job `id` (default: a new one); resubmitting the same request with the same id is harmless")
	wait := fs.Bool("wait", false, "stream the job's stdout and stderr, then exit with its exit code")
	asJSON := fs.Bool("json", false, "print the job record as JSON (with --wait: the final record instead of the output)")
	natsURL := fs.String("nats", "", "publish straight onto JetStream at this NATS `URL` instead of over HTTP (--wait still needs --server)")
	var deps, attach listFlag
	fs.Var(&deps, "dependency", "`URI` of a file (s3://bucket/key, file:///path) fetched into the job's directory; repeatable")
	fs.Var(&attach, "attach", "local `file` sent with the job (multipart) and placed in its directory; repeatable")
	fs.StringVar(&req.Setup, "setup", "", "`URI` of a bash file sourced before the command, after the applications', cluster's and command's")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req.Args = fs.Args()
	req.Command = splitTags(*command)
	req.Clusters = clusters
	req.Tags = tags
	req.Timeout = int(timeout)
	if len(env) > 0 {
		req.Env = env
	}
	if isSet(fs, "retries") {
		req.Retries = retries
	}
	req.Dependencies = deps
	if !isSet(fs, "user") && os.Getenv("JINN_USER") == "" && *natsURL == "" && srv.hasToken() {
		// With a token the intake takes the user from it (docs/auth.md):
		// $USER of this machine must not name someone else.
		req.User = ""
	}
	if len(attach) > 0 && *natsURL != "" {
		return fmt.Errorf("submit: --attach sends files over HTTP; it cannot be used with --nats (put them in S3 and use --dependency)")
	}
	cl := srv.client()

	var id string
	if *natsURL != "" {
		var err error
		if id, err = publish(ctx, *natsURL, &req); err != nil {
			return err
		}
		if !*wait {
			if *asJSON {
				return c.printJSON(map[string]string{"id": id})
			}
			fmt.Fprintln(c.stdout, id)
			return nil
		}
		if err := c.awaitRecord(ctx, cl, id); err != nil {
			return err
		}
	} else {
		files, closeFiles, err := client.OpenAttachments(attach)
		if err != nil {
			return err
		}
		j, err := cl.SubmitWithFiles(ctx, &req, files)
		closeFiles()
		if err != nil {
			return err
		}
		if !*wait {
			if *asJSON {
				return c.printJSON(j)
			}
			fmt.Fprintln(c.stdout, j.ID)
			return nil
		}
		id = j.ID
	}

	var final *job.Job
	var err error
	if *asJSON {
		final, err = cl.Wait(ctx, id)
	} else {
		final, err = c.follow(ctx, cl, id)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting for job %s, which goes on (`jinn kill %s` stops it): %w", id, id, ctx.Err())
		}
		return err
	}
	if *asJSON {
		if err := c.printJSON(final); err != nil {
			return err
		}
	}
	return c.jobExit(final)
}

// publish puts req onto jinn.submit through the NATS server at url.
func publish(ctx context.Context, url string, req *job.Request) (string, error) {
	nc, err := nats.Connect(url, nats.Name("jinn submit"))
	if err != nil {
		return "", fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", fmt.Errorf("jetstream at %s: %w", url, err)
	}
	id, err := client.NewPublisher(js).Submit(ctx, req)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return "", fmt.Errorf("%w\n(no %s stream at %s: is jinn running on this NATS?)", err, broker.SubmitStream, url)
	}
	return id, err
}

// awaitRecord waits until a scheduler has recorded the job published as id.
func (c *console) awaitRecord(ctx context.Context, cl *client.Client, id string) error {
	ctx2, cancel := context.WithTimeout(ctx, recordPatience)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		_, err := cl.Get(ctx2, id)
		if err == nil {
			return nil
		}
		if !client.IsNotFound(err) {
			return fmt.Errorf("wait for job %s over HTTP: %w", id, err)
		}
		select {
		case <-ctx2.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("job %s was published, but jinn has not recorded it after %s: is a scheduler running?", id, recordPatience)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// follow copies the job's stdout and stderr to the console's as they are
// written and returns the final record once the job has ended.
func (c *console) follow(ctx context.Context, cl *client.Client, id string) (*job.Job, error) {
	streams := []struct {
		name string
		w    io.Writer
	}{{client.Stdout, c.stdout}, {client.Stderr, c.stderr}}
	errs := make([]error, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() {
			rc, err := cl.Logs(ctx, id, s.name, true)
			if err != nil {
				errs[i] = err
				return
			}
			defer rc.Close()
			if _, err := io.Copy(s.w, rc); err != nil {
				errs[i] = fmt.Errorf("%s of job %s: %w", s.name, id, err)
			}
		})
	}
	wg.Wait()
	// The streams end when the job has ended; should one have broken off,
	// waiting still gives the job's outcome.
	j, err := cl.Wait(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Started != nil { // a job that never ran has no output to miss
		for _, e := range errs {
			if e != nil {
				fmt.Fprintf(c.stderr, "jinn: some output may be missing: %v\n", e)
			}
		}
	}
	return j, nil
}

// jobExit turns the outcome of a finished job into jinn's: nothing when it
// succeeded, its exit code when it exited with one, otherwise a line on
// stderr and 1 (124 when it timed out, as timeout(1) does).
func (c *console) jobExit(j *job.Job) error {
	switch {
	case j.Status == job.Succeeded:
		return nil
	case j.Status == job.Failed && j.ExitCode != nil && *j.ExitCode > 0 && *j.ExitCode < 256:
		return &exitError{code: *j.ExitCode}
	}
	line := fmt.Sprintf("job %s %s", j.ID, j.Status)
	if j.Message != "" {
		line += ": " + j.Message
	}
	fmt.Fprintln(c.stderr, line)
	if j.Status == job.TimedOut {
		return &exitError{code: 124}
	}
	return &exitError{code: 1}
}
