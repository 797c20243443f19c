package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Config of admission.
type Config struct {
	// DefaultMemory (MiB) of a job whose request and command name none.
	// Default 256.
	DefaultMemory int
	// UserActiveLimit is how many unfinished jobs (ACCEPTED to RUNNING) one
	// user may have. A request over it is refused with a
	// *store.ActiveLimitError (HTTP 429); one from jinn.submit is held until
	// the user has room (see Consumer). Jobs without a user are not limited.
	// Default 0: no limit.
	UserActiveLimit int
	// UserLimits overrides UserActiveLimit for some users; 0 there means no
	// limit for that user. See ParseUserLimits.
	UserLimits map[string]int
}

// activeLimit is the most unfinished jobs user may have; 0 is no limit.
func (c *Config) activeLimit(user string) int {
	if user == "" {
		return 0
	}
	if n, ok := c.UserLimits[user]; ok {
		return n
	}
	return c.UserActiveLimit
}

// Admitter admits job requests.
type Admitter struct {
	cfg      Config
	broker   *broker.Broker
	store    *store.Store
	registry *store.Registry
	log      hclog.Logger

	mu  sync.Mutex
	rnd *rand.Rand

	// The live workers as last read (see workers).
	wmu   sync.Mutex
	wread time.Time
	wlist []job.Worker
}

// workersTTL is how long admission uses one read of the live workers: a
// read per submit costs more than the rest of admission once the fleet is
// large (docs/performance.md). Only the ranking of equally good clusters by
// free memory may be this stale: a job that looks too large for every worker
// is checked again against a fresh read before it is refused.
const workersTTL = time.Second

// workers returns the live workers, read at most workersTTL ago unless fresh.
func (a *Admitter) workers(ctx context.Context, fresh bool) ([]job.Worker, error) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if !fresh && !a.wread.IsZero() && time.Since(a.wread) < workersTTL {
		return a.wlist, nil
	}
	ws, err := a.store.Workers(ctx)
	if err != nil {
		return nil, err
	}
	a.wlist, a.wread = ws, time.Now()
	return ws, nil
}

// NewAdmitter returns an Admitter.
func NewAdmitter(cfg Config, b *broker.Broker, s *store.Store, r *store.Registry, log hclog.Logger) *Admitter {
	if cfg.DefaultMemory <= 0 {
		cfg.DefaultMemory = 256
	}
	return &Admitter{cfg: cfg, broker: b, store: s, registry: r, log: log.Named("admit"),
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6a696e6e))}
}

// RejectedError is a request that was recorded but cannot run: the job is
// INVALID and Message says what was tried.
type RejectedError struct {
	Job *job.Job
}

func (e *RejectedError) Error() string { return e.Job.Message }

// ErrUnavailable wraps a failure of NATS or Redis: the request may be retried
// with the same id.
var ErrUnavailable = errors.New("jinn is unavailable")

// NewID returns a new job id: a version 7 UUID, so ids sort by creation time.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// Admit validates, records, resolves and queues a request. It returns the job
// and whether this call created it; a request whose id exists with the same
// content returns that job and does nothing more. Errors: *job.FieldError (bad
// request), store.ErrConflict (same id, different request), *RejectedError
// (nothing can run it), *store.ActiveLimitError (the user has too many
// unfinished jobs; nothing was recorded) and ErrUnavailable.
func (a *Admitter) Admit(ctx context.Context, req *job.Request) (*job.Job, bool, error) {
	if err := req.Validate(); err != nil {
		return nil, false, err
	}
	if req.ID == "" {
		req.ID = NewID()
	}
	j := &job.Job{ID: req.ID, Name: req.Name, User: req.User, Memory: req.Memory, Request: req}
	created, err := a.store.RecordWithin(ctx, j, a.cfg.activeLimit(req.User))
	if err != nil {
		var limited *store.ActiveLimitError
		if errors.Is(err, store.ErrConflict) || errors.As(err, &limited) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if !created {
		existing, err := a.store.Get(ctx, req.ID)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if existing.Status != job.Accepted {
			return existing, false, nil
		}
		// An earlier admission stopped half way: finish it.
	}
	j, err = a.queue(ctx, req, false)
	return j, created, err
}

// queue resolves a recorded request and publishes it to its cluster.
// fresh reads the live workers anew instead of using the last read.
func (a *Admitter) queue(ctx context.Context, req *job.Request, fresh bool) (*job.Job, error) {
	workers, err := a.workers(ctx, fresh)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	free := store.FreeByCluster(workers)
	largest := largestAllowances(workers)
	cat := a.registry.Catalog()
	// rank orders the clusters that match equally well: most free memory
	// first, and below them all the clusters whose workers are all too small
	// for a job of mem MiB.
	rank := func(mem int) func(string) int64 {
		return func(c string) int64 {
			if mem > 0 && largest[c] > 0 && mem > largest[c] {
				return -1
			}
			return free[c]
		}
	}
	a.mu.Lock()
	res, rerr := job.Resolve(req, cat, rank(0), a.rnd)
	a.mu.Unlock()
	if rerr != nil {
		return a.reject(ctx, req.ID, rerr.Error())
	}
	spec := a.spec(req, res) // the job's memory comes with its command
	if max := largest[spec.Cluster]; max > 0 && spec.Memory > max {
		// Another cluster that matches as well may have workers large enough.
		a.mu.Lock()
		again, err := job.Resolve(req, cat, rank(spec.Memory), a.rnd)
		a.mu.Unlock()
		if err == nil && again.Command.Name == res.Command.Name {
			res, spec = again, a.spec(req, again)
		}
	}
	if max := largest[spec.Cluster]; max > 0 && spec.Memory > max {
		if !fresh { // a larger worker may have come since the last read
			return a.queue(ctx, req, true)
		}
		return a.reject(ctx, req.ID, tooLarge(spec, max))
	}
	if err := a.planFiles(req, res, spec); err != nil {
		return a.reject(ctx, req.ID, err.Error())
	}
	err = a.store.Transition(ctx, req.ID, job.Queued, nil, store.Update{Cluster: spec.Cluster, Command: spec.Command, Memory: spec.Memory})
	var refused *store.RefusedError
	if errors.As(err, &refused) {
		return a.store.Get(ctx, req.ID) // killed or settled meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := a.publish(ctx, spec); err != nil {
		// The job stays QUEUED: the leader's reaper publishes a QUEUED job
		// whose message is missing, so nothing is lost, and a retry with the
		// same id returns this job.
		return nil, fmt.Errorf("%w: job %s is recorded but not yet queued (%v); it will be queued again, or retry with the same id", ErrUnavailable, req.ID, err)
	}
	a.broker.PublishEvent(job.Event{ID: req.ID, Status: job.Queued, Time: time.Now().UTC()})
	metrics.JobSubmitted(spec.Cluster, spec.Command)
	return a.store.Get(ctx, req.ID)
}

// publish puts a spec on its cluster's subject, retrying for a few seconds
// (a NATS leader election takes about that long). Publishing is
// de-duplicated by id, so a retry cannot queue a job twice.
func (a *Admitter) publish(ctx context.Context, spec *job.Spec) error {
	var err error
	for wait := 100 * time.Millisecond; ; wait *= 2 {
		if err = a.broker.PublishJob(ctx, spec); err == nil {
			return nil
		}
		if wait > 2*time.Second {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
	}
}

// Requeue publishes again a QUEUED job whose message is missing from its
// cluster's subject (its publish failed, or NATS lost it), on the cluster and
// with the command it was resolved to.
func (a *Admitter) Requeue(ctx context.Context, j *job.Job) error {
	if j.Request == nil {
		return fmt.Errorf("requeue job %s: its record has no request", j.ID)
	}
	cl, _, err := a.registry.Cluster(j.Cluster)
	if err != nil {
		return fmt.Errorf("requeue job %s: %w", j.ID, err)
	}
	cmd, _, err := a.registry.Command(j.Command)
	if err != nil {
		return fmt.Errorf("requeue job %s: %w", j.ID, err)
	}
	spec := a.spec(j.Request, job.Resolution{Cluster: cl, Command: cmd})
	if j.Memory > 0 {
		spec.Memory = j.Memory
	}
	return a.publish(ctx, spec)
}

func (a *Admitter) reject(ctx context.Context, id, why string) (*job.Job, error) {
	if err := a.store.Transition(ctx, id, job.Invalid, nil, store.Update{Message: why}); err != nil {
		var refused *store.RefusedError
		if !errors.As(err, &refused) {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	a.broker.PublishEvent(job.Event{ID: id, Status: job.Invalid, Message: why, Time: time.Now().UTC()})
	metrics.JobSubmitted("", "")
	metrics.JobFinished("", "", string(job.Invalid), -1)
	j, err := a.store.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil, &RejectedError{Job: j}
}

// spec builds what a worker runs: the command's argv prefix and the job's
// args; cluster, then command, then job environment.
func (a *Admitter) spec(req *job.Request, res job.Resolution) *job.Spec {
	env := map[string]string{}
	maps.Copy(env, res.Cluster.Env)
	maps.Copy(env, res.Command.Env)
	maps.Copy(env, req.Env)
	mem := req.Memory
	if mem == 0 {
		mem = res.Command.Memory
	}
	if mem == 0 {
		mem = a.cfg.DefaultMemory
	}
	return &job.Spec{
		ID: req.ID, User: req.User, Cluster: res.Cluster.Name, Command: res.Command.Name,
		Argv: append(slices.Clone(res.Command.Executable), req.Args...), Env: env,
		Memory: mem, Timeout: req.Timeout, Retries: req.RetryLimit(),
		Name: req.Name, Fingerprint: req.Fingerprint(),
	}
}

// planFiles puts into spec the files its worker fetches and the setup files
// its run script sources (job.Plan), with the command's applications read
// from the registry now: the worker never reads the registry for a job.
func (a *Admitter) planFiles(req *job.Request, res job.Resolution, spec *job.Spec) error {
	apps := make([]job.Application, 0, len(res.Command.Applications))
	for _, name := range res.Command.Applications {
		app, _, err := a.registry.Application(name)
		if err != nil {
			return fmt.Errorf("command %s links application %s, which does not exist: create it (PUT /api/v1/applications/%s) or unlink it", res.Command.Name, name, name)
		}
		apps = append(apps, app)
	}
	files, setup, err := job.Plan(apps, res.Cluster, res.Command, req)
	if err != nil {
		return err
	}
	spec.Files, spec.Setup = files, setup
	return nil
}

// largestAllowances maps each cluster to the largest allowance among the
// live workers serving it that take jobs (not DRAINING). A cluster no such
// worker serves is absent: a worker may yet come, so any size is admitted.
func largestAllowances(workers []job.Worker) map[string]int {
	out := map[string]int{}
	for _, w := range workers {
		if w.State == job.WorkerDraining {
			continue
		}
		for _, c := range w.Clusters {
			out[c] = max(out[c], w.Allowance)
		}
	}
	return out
}

// tooLarge says why a job cannot run on any worker of its cluster.
func tooLarge(spec *job.Spec, largest int) string {
	return fmt.Sprintf("job needs %d MiB of memory but the largest worker serving cluster %s gives jobs %d MiB: "+
		"ask for at most %d MiB (the memory field), or add workers with a larger --job-memory to a pool serving %s",
		spec.Memory, spec.Cluster, largest, largest, spec.Cluster)
}

// describe is a short form of a request for logs.
func describe(req *job.Request) string {
	return fmt.Sprintf("command=%s clusters=%v", strings.Join(req.Command, ","), req.Clusters)
}
