package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/job"
)

// Config of a load run.
type Config struct {
	// Server is the intake URL, or several comma separated: submits go to
	// each in turn, and to the next when one does not answer.
	Server string
	NATS   string // NATS URL(s), for submits onto jinn.submit (Via "nats")
	Via    string // "http" (default) or "nats"
	// Rate > 0 submits open loop at this many jobs a second, whatever the
	// latency; otherwise Concurrency submitters each submit and wait.
	Rate        float64
	Concurrency int
	// Jobs bounds the run by count, Duration by time; at least one is set.
	Jobs     int
	Duration time.Duration
	Shape    Shape
	// Retries of each job when its worker dies (default 5: a chaos run
	// kills workers often).
	Retries int
	// SinkDir receives what each job writes about itself; it must be
	// reachable from the workers (a local path on a one-machine fleet).
	SinkDir string
	// Settle is how long to wait for the last jobs to finish. Default 2m.
	Settle time.Duration
	// User names the run's jobs; default loadtest-<random>.
	User     string
	Seed     uint64
	Progress io.Writer // a progress line, or nil
}

// Result is what a run did and what the verifier found.
type Result struct {
	Submitted int // requests sent
	Accepted  int // 202s, or acked publishes
	Rejected  int // refused by the API or NATS
	// LastReject is the last refusal's error.
	LastReject error
	ByStatus   map[job.Status]int
	// Lost: accepted but, at the end, not finished, LOST, missing, or
	// SUCCEEDED without a completed attempt in the sink.
	Lost     int
	LostIDs  []string
	Failed   int // FAILED, TIMED_OUT, KILLED or INVALID
	Retried  int // jobs with more than one attempt started
	Overlaps int // jobs with two attempts running at once
	// StartLatency is submit (intended time) → the job's process started.
	StartLatency Percentiles
	// AcceptLatency is the submit call's round trip.
	AcceptLatency Percentiles
	Elapsed       time.Duration
	Throughput    float64 // succeeded jobs a second over the run

	finishedOK int
}

// OK reports whether the run kept jinn's promises.
func (r *Result) OK() bool { return r.Lost == 0 && r.Overlaps == 0 }

type submitted struct {
	id       string
	intended time.Time
}

// Run submits the load, waits for it to settle and verifies it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Jobs <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("loadtest: give a number of jobs or a duration")
	}
	if cfg.Rate <= 0 && cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Minute
	}
	if cfg.User == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.User = "loadtest-" + hex.EncodeToString(b)
	}
	if cfg.Shape.Kind == "" {
		cfg.Shape = Shape{Kind: "true"}
	}
	if cfg.SinkDir == "" {
		return nil, errors.New("loadtest: a sink directory is required")
	}
	if err := os.MkdirAll(cfg.SinkDir, 0o755); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	api := newIntakes(cfg.Server)
	submit, closeSubmit, err := submitter(ctx, cfg, api)
	if err != nil {
		return nil, err
	}
	defer closeSubmit()

	r := &runner{cfg: cfg, submit: submit, rnd: mrand.New(mrand.NewPCG(cfg.Seed, 1))}
	start := time.Now()
	stopProgress := r.progress(start)
	if cfg.Rate > 0 {
		r.openLoop(ctx, start)
	} else {
		r.closedLoop(ctx, start)
	}
	finals, err := r.settle(ctx, api)
	stopProgress()
	if err != nil {
		return nil, err
	}
	res := r.verify(finals)
	res.Elapsed = time.Since(start)
	res.Throughput = float64(res.finishedOK) / res.Elapsed.Seconds()
	return res, nil
}

type runner struct {
	cfg    Config
	submit func(context.Context, *job.Request) (string, error)

	mu         sync.Mutex
	rnd        *mrand.Rand
	jobs       []submitted
	acceptLat  []time.Duration
	sent       atomic.Int64
	rejected   atomic.Int64
	finished   atomic.Int64
	lastReject error
}

// submitter returns the function that hands one request to jinn.
func submitter(ctx context.Context, cfg Config, api *intakes) (func(context.Context, *job.Request) (string, error), func(), error) {
	if cfg.Via != "nats" {
		return func(ctx context.Context, req *job.Request) (string, error) {
			if req.ID == "" {
				req.ID = newID() // so that a retry on another intake is the same job
			}
			var j *job.Job
			err := api.do(func(c *client.Client) (err error) { j, err = c.Submit(ctx, req); return err })
			if err != nil {
				return "", err
			}
			return j.ID, nil
		}, func() {}, nil
	}
	nc, err := nats.Connect(cfg.NATS, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		return nil, nil, fmt.Errorf("loadtest: nats %s: %w", cfg.NATS, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	pub := client.NewPublisher(js)
	return pub.Submit, nc.Close, nil
}

// request builds one job: it takes its job's lock (an attempt that finds the
// lock held knows another attempt runs at the same time), records its start,
// does its work and records its end.
func (r *runner) request() *job.Request {
	r.mu.Lock()
	work := r.cfg.Shape.work(r.rnd)
	r.mu.Unlock()
	sink := r.cfg.SinkDir
	script := fmt.Sprintf(`exec 9>>%[1]q/"$JINN_JOB_ID".lock
flock -n 9 || echo "$JINN_JOB_ID $JINN_ATTEMPT $JINN_WORKER" >> %[1]q/overlaps
echo "$JINN_ATTEMPT $JINN_WORKER $(date +%%s%%N) start" >> %[1]q/"$JINN_JOB_ID"
%[2]s
echo "$JINN_ATTEMPT $JINN_WORKER $(date +%%s%%N) end" >> %[1]q/"$JINN_JOB_ID"
`, sink, work)
	retries := r.cfg.Retries
	return &job.Request{
		User: r.cfg.User, Name: "loadtest", Command: []string{"type:bash"}, Args: []string{script},
		Memory: r.cfg.Shape.memory(), Retries: &retries,
	}
}

func (r *runner) one(ctx context.Context, intended time.Time) {
	req := r.request()
	r.sent.Add(1)
	t0 := time.Now()
	var id string
	var err error
	for try := 0; try < 5; try++ { // the same request is idempotent once it has an id
		if id, err = r.submit(ctx, req); err == nil || ctx.Err() != nil {
			break
		}
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status < 500 {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	lat := time.Since(t0)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.rejected.Add(1)
		r.lastReject = err
		return
	}
	r.jobs = append(r.jobs, submitted{id: id, intended: intended})
	r.acceptLat = append(r.acceptLat, lat)
}

func (r *runner) done(i int, start time.Time) bool {
	if r.cfg.Jobs > 0 && i >= r.cfg.Jobs {
		return true
	}
	return r.cfg.Duration > 0 && time.Since(start) >= r.cfg.Duration
}

// openLoop sends at the configured rate; latency counts from the time a
// request was due, so a slow jinn cannot hide its delay (no coordinated
// omission).
func (r *runner) openLoop(ctx context.Context, start time.Time) {
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	paced(ctx, start, interval, func(i int) bool { return !r.done(i, start) }, func(due time.Time) { r.one(ctx, due) })
}

// paced calls send(due) in a goroutine of its own at start, start+interval,
// start+2×interval, ... while more(i) holds, whatever the earlier sends are
// doing (open loop), and waits for them all.
func paced(ctx context.Context, start time.Time, interval time.Duration, more func(i int) bool, send func(due time.Time)) {
	var wg sync.WaitGroup
	for i := 0; more(i) && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(due)
		}()
	}
	wg.Wait()
}

func (r *runner) closedLoop(ctx context.Context, start time.Time) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < r.cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if r.done(i, start) {
					return
				}
				r.one(ctx, time.Now())
			}
		}()
	}
	wg.Wait()
}

func (r *runner) snapshot() []submitted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.jobs)
}

// settle waits until every accepted job is finished, or Settle has passed,
// and returns the final records by id.
func (r *runner) settle(ctx context.Context, api *intakes) (map[string]job.Job, error) {
	r.mu.Lock()
	want := len(r.jobs)
	r.mu.Unlock()
	deadline := time.Now().Add(r.cfg.Settle)
	for {
		finals := map[string]job.Job{}
		cursor := ""
		var err error
		for {
			var page []job.Job
			err = api.do(func(c *client.Client) (err error) {
				page, cursor, err = c.List(ctx, client.ListOptions{User: r.cfg.User, Limit: 1000, Cursor: cursor})
				return err
			})
			if err != nil {
				break
			}
			for _, j := range page {
				finals[j.ID] = j
			}
			if cursor == "" {
				break
			}
		}
		// A job the user index lost (Redis restarted empty) is asked for by id.
		for _, s := range r.snapshot() {
			if _, ok := finals[s.id]; ok || err != nil {
				continue
			}
			var j *job.Job
			if api.do(func(c *client.Client) (err error) { j, err = c.Get(ctx, s.id); return err }) == nil {
				finals[s.id] = *j
			}
		}
		terminal := 0
		for _, s := range r.snapshot() {
			if j, ok := finals[s.id]; ok && j.Status.Terminal() {
				terminal++
			}
		}
		r.finished.Store(int64(terminal))
		if err == nil && terminal >= want {
			return finals, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("loadtest: read final statuses: %w", err)
			}
			return finals, nil
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func (r *runner) progress(start time.Time) func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprintf(r.cfg.Progress, "\r%s\n", r.line(start))
				return
			case <-t.C:
				fmt.Fprintf(r.cfg.Progress, "\r%s", r.line(start))
			}
		}
	}()
	return func() { close(stop); <-done }
}

func (r *runner) line(start time.Time) string {
	total := "?"
	if r.cfg.Jobs > 0 {
		total = fmt.Sprint(r.cfg.Jobs)
	}
	sent := r.sent.Load()
	bar := ""
	if r.cfg.Jobs > 0 {
		n := min(20, int(20*r.finished.Load()/int64(r.cfg.Jobs)))
		bar = "[" + strings.Repeat("#", n) + strings.Repeat(".", 20-n) + "] "
	}
	return fmt.Sprintf("%ssubmitted %d/%s  finished %d  rejected %d  %s", bar, sent, total, r.finished.Load(), r.rejected.Load(), time.Since(start).Round(time.Second))
}

// verify compares the sink with the final statuses.
func (r *runner) verify(finals map[string]job.Job) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Submitted: int(r.sent.Load()), Accepted: len(r.jobs), Rejected: int(r.rejected.Load()), LastReject: r.lastReject,
		ByStatus: map[job.Status]int{}, AcceptLatency: percentiles(r.acceptLat),
	}
	sink := readSink(r.cfg.SinkDir)
	var startLat []time.Duration
	finishedOK := 0
	for _, s := range r.jobs {
		j, ok := finals[s.id]
		runs := sink.attempts[s.id]
		if len(runs.started()) > 1 {
			res.Retried++
		}
		if runs.overlap() || sink.overlaps[s.id] {
			res.Overlaps++
		}
		if first, ok := runs.firstStart(); ok {
			startLat = append(startLat, first.Sub(s.intended))
		}
		switch {
		case !ok || !j.Status.Terminal() || j.Status == job.Lost:
			res.Lost++
			res.LostIDs = append(res.LostIDs, s.id)
		case j.Status == job.Succeeded && !runs.completed():
			res.Lost++ // jinn says it ran; nothing ran to its end
			res.LostIDs = append(res.LostIDs, s.id)
		case j.Status != job.Succeeded:
			res.Failed++
		default:
			finishedOK++
		}
		if ok {
			res.ByStatus[j.Status]++
		}
	}
	res.StartLatency = percentiles(startLat)
	res.finishedOK = finishedOK
	return res
}

// sinkData is what jobs wrote about themselves.
type sinkData struct {
	attempts map[string]attempts
	overlaps map[string]bool
}

func readSink(dir string) sinkData {
	d := sinkData{attempts: map[string]attempts{}, overlaps: map[string]bool{}}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "overlaps":
			for _, f := range readLines(filepath.Join(dir, name)) {
				if len(f) >= 1 {
					d.overlaps[f[0]] = true
				}
			}
		case filepath.Ext(name) == ".lock":
		default:
			d.attempts[name] = parseAttempts(readLines(filepath.Join(dir, name)))
		}
	}
	return d
}
