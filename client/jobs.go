package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// Submit hands a job request to jinn and returns the job as recorded. A
// request without a user gets the client's (WithUser). Submitting again with
// the same id and the same request returns the existing job; the same id with
// a different request is a 409 conflict.
func (c *Client) Submit(ctx context.Context, req *job.Request) (*job.Job, error) {
	r := *req
	if r.User == "" {
		r.User = c.user
	}
	var j job.Job
	if _, err := c.call(ctx, http.MethodPost, "/jobs", nil, &r, &j); err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	return &j, nil
}

// Get returns the record of job id.
func (c *Client) Get(ctx context.Context, id string) (*job.Job, error) {
	p, err := seg("job id", id)
	if err != nil {
		return nil, err
	}
	var j job.Job
	if _, err := c.call(ctx, http.MethodGet, "/jobs/"+p, nil, nil, &j); err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return &j, nil
}

// ListOptions filter a listing of jobs; zero fields do not filter.
type ListOptions struct {
	User    string
	Status  job.Status
	Cluster string
	Limit   int    // jobs per page; 0 takes the server's default
	Cursor  string // the next cursor of the previous page
}

// List returns one page of jobs, newest first, and the cursor of the next
// page ("" after the last page).
func (c *Client) List(ctx context.Context, opts ListOptions) ([]job.Job, string, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("user", opts.User)
	set("status", string(opts.Status))
	set("cluster", opts.Cluster)
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	set("cursor", opts.Cursor)
	var page struct {
		Jobs []job.Job `json:"jobs"`
		Next string    `json:"next"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/jobs", q, nil, &page); err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	return page.Jobs, page.Next, nil
}

// Kill asks jinn to kill job id and returns its record: KILLED when it was
// ended at once, otherwise still active with KillRequested set while its
// worker ends it. Killing a job that has already finished is a 409 conflict.
func (c *Client) Kill(ctx context.Context, id string) (*job.Job, error) {
	p, err := seg("job id", id)
	if err != nil {
		return nil, err
	}
	var j job.Job
	if _, err := c.call(ctx, http.MethodDelete, "/jobs/"+p, nil, nil, &j); err != nil {
		return nil, fmt.Errorf("kill job %s: %w", id, err)
	}
	return &j, nil
}

// Stream names of a job's output.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Logs returns a job's stdout or stderr (stream "" is stdout). With follow,
// the reader yields output as the job writes it and ends once the job has
// ended and everything was sent; cancel ctx or close the reader to stop
// earlier. The caller closes the reader.
func (c *Client) Logs(ctx context.Context, id, stream string, follow bool) (io.ReadCloser, error) {
	p, err := seg("job id", id)
	if err != nil {
		return nil, err
	}
	if stream == "" {
		stream = Stdout
	}
	if stream != Stdout && stream != Stderr {
		return nil, fmt.Errorf("logs of job %s: stream %q is neither stdout nor stderr", id, stream)
	}
	q := url.Values{"stream": {stream}}
	if follow {
		q.Set("follow", "true")
	}
	resp, err := c.send(ctx, http.MethodGet, "/jobs/"+p+"/logs", q, nil)
	if err != nil {
		return nil, fmt.Errorf("%s of job %s: %w", stream, id, err)
	}
	return resp.Body, nil
}

// Output lists the top of a job's directory: its files while it runs, its
// archive after.
func (c *Client) Output(ctx context.Context, id string) ([]job.File, error) {
	p, err := seg("job id", id)
	if err != nil {
		return nil, err
	}
	var list struct {
		Entries []job.File `json:"entries"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/jobs/"+p+"/output/", nil, nil, &list); err != nil {
		return nil, fmt.Errorf("output of job %s: %w", id, err)
	}
	return list.Entries, nil
}

// OutputFile returns the content of one file of a job's directory, by its
// slash-separated path in that directory. The caller closes the reader.
func (c *Client) OutputFile(ctx context.Context, id, path string) (io.ReadCloser, error) {
	p, err := seg("job id", id)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range parts {
		if s == "" || s == "." || s == ".." {
			return nil, fmt.Errorf("output of job %s: bad path %q", id, path)
		}
		parts[i] = url.PathEscape(s)
	}
	resp, err := c.send(ctx, http.MethodGet, "/jobs/"+p+"/output/"+strings.Join(parts, "/"), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("output %s of job %s: %w", path, id, err)
	}
	return resp.Body, nil
}

// Polling bounds of Wait.
const (
	waitFirst = 50 * time.Millisecond
	waitMax   = time.Second
	// waitTolerance is how long Wait rides out a server that fails or
	// cannot be reached (an intake restarting behind a load balancer).
	waitTolerance = 30 * time.Second
)

// Wait returns the record of job id once it is terminal. It polls, backing
// off from 50ms to 1s between reads, and rides out server errors (5xx, no
// connection) for up to 30s in a row. When ctx ends first it returns the last
// record it read (nil if none) with the context's error.
func (c *Client) Wait(ctx context.Context, id string) (*job.Job, error) {
	delay := waitFirst
	t := time.NewTimer(0)
	defer t.Stop()
	var last *job.Job
	var failing time.Time // since when every read failed
	for {
		j, err := c.Get(ctx, id)
		switch {
		case ctx.Err() != nil:
			return last, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case err != nil && !transient(err):
			return last, err
		case err != nil && failing.IsZero():
			failing = time.Now()
		case err != nil && time.Since(failing) > waitTolerance:
			return last, fmt.Errorf("wait for job %s: failing for %s: %w", id, waitTolerance, err)
		case err == nil && j.Status.Terminal():
			return j, nil
		case err == nil:
			last, failing = j, time.Time{}
		}
		t.Reset(delay)
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, waitMax)
	}
}

// transient reports whether err may go away on its own: a server error or
// no answer at all. An answer of the API about the request (4xx) will not.
func transient(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500
	}
	var ue *url.Error
	return errors.As(err, &ue)
}
