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
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Config of admission.
type Config struct {
	// DefaultMemory (MiB) of a job whose request and command name none.
	// Default 256.
	DefaultMemory int
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
// (nothing can run it) and ErrUnavailable.
func (a *Admitter) Admit(ctx context.Context, req *job.Request) (*job.Job, bool, error) {
	if err := req.Validate(); err != nil {
		return nil, false, err
	}
	if req.ID == "" {
		req.ID = NewID()
	}
	j := &job.Job{ID: req.ID, Name: req.Name, User: req.User, Memory: req.Memory, Request: req}
	created, err := a.store.Record(ctx, j)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
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
	j, err = a.queue(ctx, req)
	return j, created, err
}

// queue resolves a recorded request and publishes it to its cluster.
func (a *Admitter) queue(ctx context.Context, req *job.Request) (*job.Job, error) {
	workers, err := a.store.Workers(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	free := store.FreeByCluster(workers)
	a.mu.Lock()
	res, rerr := job.Resolve(req, a.registry.Catalog(), func(c string) int64 { return free[c] }, a.rnd)
	a.mu.Unlock()
	if rerr != nil {
		return a.reject(ctx, req.ID, rerr.Error())
	}
	spec := a.spec(req, res)
	if max := largestAllowance(workers, spec.Cluster); max > 0 && spec.Memory > max {
		return a.reject(ctx, req.ID, fmt.Sprintf("job needs %d MiB but the largest worker serving cluster %s gives jobs %d MiB", spec.Memory, spec.Cluster, max))
	}
	err = a.store.Transition(ctx, req.ID, job.Queued, nil, store.Update{Cluster: spec.Cluster, Command: spec.Command, Memory: spec.Memory})
	var refused *store.RefusedError
	if errors.As(err, &refused) {
		return a.store.Get(ctx, req.ID) // killed or settled meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// Publishing is de-duplicated by id, so retrying cannot queue it twice.
	for try := 0; ; try++ {
		if err = a.broker.PublishJob(ctx, spec); err == nil {
			break
		}
		if try == 2 || ctx.Err() != nil {
			msg := "could not be queued: " + err.Error() + "; submit it again with a new id"
			_ = a.store.Transition(context.WithoutCancel(ctx), req.ID, job.Lost, nil, store.Update{Message: msg})
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		time.Sleep(time.Duration(100*(try+1)) * time.Millisecond)
	}
	a.broker.PublishEvent(job.Event{ID: req.ID, Status: job.Queued, Time: time.Now().UTC()})
	return a.store.Get(ctx, req.ID)
}

func (a *Admitter) reject(ctx context.Context, id, why string) (*job.Job, error) {
	if err := a.store.Transition(ctx, id, job.Invalid, nil, store.Update{Message: why}); err != nil {
		var refused *store.RefusedError
		if !errors.As(err, &refused) {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	a.broker.PublishEvent(job.Event{ID: id, Status: job.Invalid, Message: why, Time: time.Now().UTC()})
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
	}
}

// largestAllowance is the largest allowance among live workers serving
// cluster, or 0 when none is known (a worker may yet come).
func largestAllowance(workers []job.Worker, cluster string) int {
	max := 0
	for _, w := range workers {
		if slices.Contains(w.Clusters, cluster) && w.Allowance > max {
			max = w.Allowance
		}
	}
	return max
}

// describe is a short form of a request for logs.
func describe(req *job.Request) string {
	return fmt.Sprintf("command=%s clusters=%v", strings.Join(req.Command, ","), req.Clusters)
}
