package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler/scale"
	"github.com/jinn-fleet/jinn/store"
)

// AutoscaleConfig of the autoscaler. Zero fields take the defaults beside
// them.
type AutoscaleConfig struct {
	// Pools the autoscaler sizes. Required.
	Pools []AutoscalePool
	// Interval between two ticks. Default 10s.
	Interval time.Duration
	// CallTimeout bounds one call to a provider and one drain request to a
	// worker. Default 30s.
	CallTimeout time.Duration
	// StartGrace is how long the workers asked of a provider that cannot
	// list them (exec) count as starting while they have not sent a
	// heartbeat. Default 5m.
	StartGrace time.Duration
	// Now is the clock; tests drive it. Default time.Now.
	Now func() time.Time
}

// AutoscalePool is one pool the autoscaler sizes.
type AutoscalePool struct {
	Name     string
	Policy   job.ScalePolicy
	Provider scale.Provider
	// Clusters whose waiting jobs count for the pool besides those its live
	// workers serve. A pool that may empty (Min 0) needs them: without a
	// worker, nothing else says which clusters it serves.
	Clusters []string
}

// Autoscaler is the leader's duty that sizes worker pools by memory load.
// Each tick, for each pool, it reads the heartbeats and the waiting counts,
// asks job.DecideScale, records the decision in Redis (fenced by the leader's
// token) and then carries it out: a larger desired size goes to the provider,
// a worker to shed is drained over NATS and removed from the provider once it
// has exited.
type Autoscaler struct {
	cfg    AutoscaleConfig
	broker *broker.Broker
	store  *store.Store
	log    hclog.Logger

	// Only Tick touches these; the leader runs one tick at a time.
	token     uint64
	asserted  map[string]bool // pools whose size was asserted under token
	mismatch  int             // ticks in a row the waiting counts disagreed with the index
	recounted int             // times the waiting counts were rebuilt
}

// NewAutoscaler returns the autoscaler duty.
func NewAutoscaler(cfg AutoscaleConfig, b *broker.Broker, s *store.Store, log hclog.Logger) (*Autoscaler, error) {
	if len(cfg.Pools) == 0 {
		return nil, errors.New("autoscaler: no pool to size")
	}
	seen := map[string]bool{}
	for _, p := range cfg.Pools {
		if err := job.ValidateName("pool", p.Name); err != nil {
			return nil, fmt.Errorf("autoscaler: %w", err)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("autoscaler: pool %s is named twice", p.Name)
		}
		seen[p.Name] = true
		if p.Provider == nil {
			return nil, fmt.Errorf("autoscaler: pool %s has no provider", p.Name)
		}
		if err := p.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("autoscaler: pool %s: %w", p.Name, err)
		}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.StartGrace <= 0 {
		cfg.StartGrace = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Autoscaler{cfg: cfg, broker: b, store: s, log: log.Named("autoscaler"), asserted: map[string]bool{}}, nil
}

// Name is "autoscaler".
func (a *Autoscaler) Name() string { return "autoscaler" }

// Interval is the time between two ticks.
func (a *Autoscaler) Interval() time.Duration { return a.cfg.Interval }

// Recounts is how many times the waiting counts were found wrong and rebuilt.
func (a *Autoscaler) Recounts() int { return a.recounted }

// Tick decides and acts for every pool once.
func (a *Autoscaler) Tick(ctx context.Context, lead Lead) error {
	if lead.Token != a.token {
		// A new leadership: say every pool's size again once, since the
		// last leader may have stopped between deciding and asking.
		a.token, a.asserted, a.mismatch = lead.Token, map[string]bool{}, 0
	}
	workers, err := a.store.Workers(ctx)
	if err != nil {
		return err
	}
	waiting, err := a.store.Waiting(ctx)
	if err != nil {
		return err
	}
	a.checkWaiting(ctx)
	var errs []error
	for _, p := range a.cfg.Pools {
		if err := a.tickPool(ctx, lead, p, workers, waiting); err != nil {
			if errors.Is(err, store.ErrStaleLeader) {
				return err
			}
			errs = append(errs, fmt.Errorf("pool %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// checkWaiting rebuilds the waiting counts when they have disagreed with the
// QUEUED index for three ticks in a row (a single disagreement can be a
// status change between the two reads).
func (a *Autoscaler) checkWaiting(ctx context.Context) {
	counted, indexed, err := a.store.CheckWaiting(ctx)
	if err != nil || counted == indexed {
		a.mismatch = 0
		return
	}
	if a.mismatch++; a.mismatch < 3 {
		return
	}
	a.mismatch = 0
	n, err := a.store.RecountWaiting(ctx)
	if err != nil {
		a.log.Warn("rebuild the waiting counts", "error", err)
		return
	}
	a.recounted++
	a.log.Warn("the waiting counts disagreed with the QUEUED index (Redis lost writes, or jobs were restored); rebuilt them", "counted", counted, "indexed", indexed, "waiting", n)
}

func (a *Autoscaler) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.CallTimeout)
}

func (a *Autoscaler) tickPool(ctx context.Context, lead Lead, p AutoscalePool, all []job.Worker, waiting map[string]store.Waiting) error {
	now := a.cfg.Now()
	rec, err := a.store.Pool(ctx, p.Name, 0)
	fresh := errors.Is(err, store.ErrNoPool)
	if err != nil && !fresh {
		return err
	}
	if fresh {
		rec = &job.Pool{Name: p.Name}
	}
	var problems []string
	problem := func(err error) {
		a.log.Warn("autoscale", "pool", p.Name, "error", err)
		problems = append(problems, err.Error())
	}

	// The pool's workers; those it asked to drain count as draining even
	// before their heartbeat says so.
	asked := map[string]bool{}
	for _, id := range rec.Draining {
		asked[id] = true
	}
	var mine []job.Worker
	alive := map[string]job.Worker{}
	for _, w := range all {
		if w.Pool != p.Name {
			continue
		}
		alive[w.ID] = w
		if asked[w.ID] {
			w.State = job.WorkerDraining
		}
		mine = append(mine, w)
	}

	// A drained worker that has exited leaves the provider; one that never
	// got the request is asked again.
	var draining []string
	for _, id := range rec.Draining {
		w, ok := alive[id]
		switch {
		case !ok:
			// Bounded by the tick interval too: a worker slow to exit after
			// its heartbeat went must not stall the pool's other decisions;
			// it is removed at a later tick.
			cctx, cancel := context.WithTimeout(ctx, min(a.cfg.CallTimeout, max(a.cfg.Interval, time.Second)))
			err := p.Provider.Remove(cctx, p.Name, id)
			cancel()
			if err != nil {
				problem(fmt.Errorf("remove drained worker %s: %w", id, err))
				draining = append(draining, id)
				continue
			}
			a.log.Info("removed a drained worker", "pool", p.Name, "worker", id)
		case w.State == job.WorkerActive:
			draining = append(draining, id)
			if err := a.drain(ctx, id); err != nil {
				problem(err)
			}
		default:
			draining = append(draining, id)
		}
	}

	// Workers the provider started that have not sent a heartbeat yet.
	starting, liveInstances, listed := 0, 0, true
	cctx, cancel := a.call(ctx)
	instances, err := p.Provider.List(cctx, p.Name)
	cancel()
	active := 0
	for _, w := range mine {
		if w.State == job.WorkerActive {
			active++
		}
	}
	switch {
	case err == nil:
		for _, in := range instances {
			if !in.Live {
				continue
			}
			liveInstances++
			if _, ok := alive[in.ID]; ok || asked[in.ID] {
				continue
			}
			if !in.Started.IsZero() && now.Sub(in.Started) > a.cfg.StartGrace {
				problem(fmt.Errorf("worker %s started %s ago and has sent no heartbeat: see its log", in.ID, now.Sub(in.Started).Round(time.Second)))
				continue
			}
			starting++
		}
	case errors.Is(err, scale.ErrNoList):
		listed = false
		if !rec.History.LastUp.IsZero() && now.Sub(rec.History.LastUp) < a.cfg.StartGrace {
			starting = max(rec.Desired-active, 0)
		}
	default:
		listed = false
		problem(fmt.Errorf("list workers: %w", err))
	}

	// The clusters whose waiting jobs count.
	clusters := slices.Clone(p.Clusters)
	for _, w := range mine {
		clusters = append(clusters, w.Clusters...)
	}
	sort.Strings(clusters)
	clusters = slices.Compact(clusters)
	var wmem, wjobs int
	for _, c := range clusters {
		wmem += waiting[c].Memory
		wjobs += waiting[c].Jobs
	}

	desired := rec.Desired
	if fresh {
		desired = active + starting
	}
	snap := job.PoolSnapshot{Time: now, Workers: mine, Starting: starting, Desired: desired, WaitingMemory: wmem, WaitingJobs: wjobs}
	d, hist := job.DecideScale(snap, rec.History, p.Policy)
	prevRule := ""
	if rec.Last != nil {
		prevRule = rec.Last.Rule
	}
	if d.Action == job.ScaleDown {
		draining = append(draining, d.Drain)
	}
	rec.Provider, rec.Clusters, rec.Policy = p.Provider.Name(), clusters, p.Policy.WithDefaults()
	rec.Size, rec.Starting, rec.Desired, rec.Draining = active, starting, d.Desired, draining
	rec.History, rec.Updated = hist, now
	rec.Last = &d
	logged := d.Action != job.ScaleHold || d.Rule != prevRule
	// Recorded before it is carried out: a leader that lost its place is
	// refused here and does nothing.
	var entry *job.ScaleDecision
	if logged {
		entry = &d
	}
	if err := a.store.SavePool(ctx, lead.Token, rec, entry); err != nil {
		return err
	}
	metrics.Pool(p.Name, active, d.Desired, string(d.Action))
	if d.Action != job.ScaleHold {
		a.log.Info("scale "+string(d.Action), "pool", p.Name, "desired", d.Desired, "drain", d.Drain, "reason", d.Reason)
	} else if logged {
		a.log.Debug("hold", "pool", p.Name, "rule", d.Rule, "reason", d.Reason)
	}

	// Carry it out.
	var acted []string
	switch {
	case d.Action == job.ScaleUp,
		!a.asserted[p.Name],
		listed && d.Action != job.ScaleDown && liveInstances < d.Desired:
		cctx, cancel := a.call(ctx)
		err := p.Provider.SetDesired(cctx, p.Name, d.Desired)
		cancel()
		if err != nil {
			acted = append(acted, fmt.Sprintf("ask %s for %d workers: %v", p.Provider.Name(), d.Desired, err))
		} else {
			a.asserted[p.Name] = true
		}
	}
	if d.Action == job.ScaleDown {
		if err := a.drain(ctx, d.Drain); err != nil {
			acted = append(acted, err.Error())
		}
	}
	if pr, ok := p.Provider.(scale.Protector); ok {
		busy := map[string]bool{}
		for _, w := range mine {
			busy[w.ID] = len(w.Jobs) > 0 || w.Reserved > 0
		}
		cctx, cancel := a.call(ctx)
		if err := pr.Protect(cctx, p.Name, busy); err != nil {
			problem(fmt.Errorf("scale-in protection: %w", err))
		}
		cancel()
	}
	for _, s := range acted {
		a.log.Warn("autoscale", "pool", p.Name, "error", s)
	}
	problems = append(problems, acted...)
	if len(problems) > 0 {
		// The failure joins the record; the next tick tries again.
		d.Error = joinProblems(problems)
		rec.Last = &d
		if err := a.store.SavePool(ctx, lead.Token, rec, &d); err != nil {
			return err
		}
		return errors.New(d.Error)
	}
	return nil
}

// drain asks a worker to stop pulling, finish its jobs and exit.
func (a *Autoscaler) drain(ctx context.Context, id string) error {
	cctx, cancel := a.call(ctx)
	defer cancel()
	rep, err := a.broker.Ask(cctx, id, broker.VerbDrain, broker.ControlRequest{})
	if err != nil {
		return fmt.Errorf("drain worker %s (asked again next tick): %w", id, err)
	}
	if rep.Error != "" {
		return fmt.Errorf("drain worker %s: %s", id, rep.Error)
	}
	a.log.Info("asked a worker to drain", "worker", id)
	return nil
}

func joinProblems(ps []string) string {
	out := ps[0]
	for _, p := range ps[1:] {
		out += "; " + p
	}
	return out
}
