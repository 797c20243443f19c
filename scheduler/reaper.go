package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// ReaperConfig of the reaper duty. Zero fields take the defaults beside them.
type ReaperConfig struct {
	// Interval between two rounds. Default 10s.
	Interval time.Duration
	// AcceptedAfter is how long a job may stay ACCEPTED (its admission
	// stopped half way: an intake died between recording and queueing it)
	// before the reaper finishes its admission. Default 1m.
	AcceptedAfter time.Duration
	// QueuedAfter is how long a QUEUED job may be without a message in
	// JINN_JOBS before it is settled. A job is marked QUEUED just before its
	// message is published, so this must cover a publish. Default 1m.
	QueuedAfter time.Duration
	// InitTimeout is how long a job may stay CLAIMED or INIT (files, setup)
	// on a live worker before it is FAILED and its worker told to kill it.
	// Default 10m.
	InitTimeout time.Duration
	// Now is the clock; tests drive it. Default time.Now.
	Now func() time.Time
}

func (c *ReaperConfig) defaults() {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.AcceptedAfter <= 0 {
		c.AcceptedAfter = time.Minute
	}
	if c.QueuedAfter <= 0 {
		c.QueuedAfter = time.Minute
	}
	if c.InitTimeout <= 0 {
		c.InitTimeout = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Reaper is the leader's duty that settles the jobs nothing else will:
//
//   - an active job (CLAIMED, INIT, RUNNING) whose worker has no heartbeat
//     and whose message is gone from JINN_JOBS. While the message is there,
//     JetStream redelivers it after AckWait and the claim starts attempt n+1
//     or marks the job LOST; the reaper leaves such a job alone, so a worker
//     that is slow to beat is never declared lost while it holds its lease.
//     Without the message no new attempt can start: if the archive holds the
//     job's final record (Redis came back older than the archive), that
//     record is the job's end; otherwise the job is LOST, with the reason.
//   - a job CLAIMED or INIT for longer than InitTimeout on a live worker:
//     FAILED, and its worker is told to kill it.
//   - a job QUEUED for longer than QueuedAfter whose message is gone: settled
//     from the archive as above, or LOST (nothing can run it).
//   - a job ACCEPTED for longer than AcceptedAfter: its admission is finished
//     (resolved and queued, or INVALID), as a retried submit would.
//
// Every settle is one script that checks the leader's token and that the
// job did not change since it was read, so a settle can never undo a claim
// or a status write that came in between.
type Reaper struct {
	cfg     ReaperConfig
	store   *store.Store
	broker  *broker.Broker
	archive store.Archive
	admit   *Admitter
	log     hclog.Logger
}

// NewReaper returns the reaper duty. archive and admit may be nil: then
// finished jobs are not looked up in the archive and ACCEPTED jobs are left
// alone.
func NewReaper(cfg ReaperConfig, s *store.Store, b *broker.Broker, a store.Archive, adm *Admitter, log hclog.Logger) *Reaper {
	cfg.defaults()
	return &Reaper{cfg: cfg, store: s, broker: b, archive: a, admit: adm, log: log.Named("reaper")}
}

// Name implements Duty.
func (r *Reaper) Name() string { return "reaper" }

// Interval implements Duty.
func (r *Reaper) Interval() time.Duration { return r.cfg.Interval }

// Tick implements Duty: one round over the unfinished jobs.
func (r *Reaper) Tick(ctx context.Context, lead Lead) error {
	live, err := r.store.LiveWorkers(ctx)
	if err != nil {
		return err
	}
	return r.store.ScanActive(ctx, 500, func(batch []store.Live) error {
		for _, l := range batch {
			if err := r.inspect(ctx, lead, l, live); err != nil {
				if errors.Is(err, store.ErrStaleLeader) || ctx.Err() != nil {
					return err
				}
				r.log.Warn("inspect job", "job", l.ID, "status", l.Status, "error", err)
			}
		}
		return nil
	})
}

func (r *Reaper) inspect(ctx context.Context, lead Lead, l store.Live, live map[string]bool) error {
	now := r.cfg.Now()
	switch {
	case l.Status == job.Accepted:
		if now.Sub(l.Created) < r.cfg.AcceptedAfter || r.admit == nil {
			return nil
		}
		return r.readmit(ctx, l)
	case l.Status == job.Queued:
		if now.Sub(l.Updated) < r.cfg.QueuedAfter {
			return nil
		}
		there, err := r.messageThere(ctx, l)
		if err != nil || there {
			return err
		}
		if r.admit != nil {
			j, err := r.store.Get(ctx, l.ID)
			if err == nil && j.Status == job.Queued && j.Request != nil {
				if err := r.admit.Requeue(ctx, j); err != nil {
					return err
				}
				r.log.Warn("queued again a job whose message was missing", "job", l.ID, "cluster", j.Cluster)
				return nil
			}
		}
		return r.settleGone(ctx, lead, l, false,
			"its message vanished from JINN_JOBS before any worker ran it (NATS lost data?); submit it again")
	case l.Status.Active() && !live[l.Worker]:
		there, err := r.messageThere(ctx, l)
		if err != nil || there {
			return err // redelivery after AckWait settles it
		}
		return r.settleGone(ctx, lead, l, true, fmt.Sprintf(
			"worker %s was lost during attempt %d and the job's message is gone from JINN_JOBS, so no new attempt can start; submit it again", l.Worker, l.Attempt))
	case (l.Status == job.Claimed || l.Status == job.Init) && now.Sub(l.Updated) > r.cfg.InitTimeout:
		msg := fmt.Sprintf("stuck in %s for more than %s on worker %s (attempt %d)", l.Status, r.cfg.InitTimeout, l.Worker, l.Attempt)
		err := r.store.Settle(ctx, lead.Token, store.Settlement{ID: l.ID, Seen: l.Status, Lease: l.Lease, To: job.Failed, Message: msg})
		if err != nil {
			return r.settleErr(l, err)
		}
		r.log.Info("settled a job stuck before RUNNING", "job", l.ID, "worker", l.Worker, "status", l.Status)
		r.broker.PublishEvent(job.Event{ID: l.ID, Status: job.Failed, Message: msg, Attempt: l.Attempt, Worker: l.Worker, Time: now.UTC()})
		metrics.JobFinished(l.Cluster, "", string(job.Failed), -1)
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := r.broker.Ask(actx, l.Worker, broker.VerbKill, broker.ControlRequest{Job: l.ID}); err != nil {
			r.log.Warn("tell the worker to kill a job stuck before RUNNING", "job", l.ID, "worker", l.Worker, "error", err)
		}
	}
	return nil
}

// messageThere reports whether the job's message is still in JINN_JOBS:
// the message of its lease, or, without a lease, any message of the job.
func (r *Reaper) messageThere(ctx context.Context, l store.Live) (bool, error) {
	if l.Lease != nil {
		return r.broker.JobPending(ctx, l.Lease.Seq)
	}
	_, _, err := r.broker.QueuedJob(ctx, l.ID)
	if errors.Is(err, broker.ErrNoMessage) {
		return false, nil
	}
	return err == nil, err
}

// settleGone ends a job whose message is gone: as the archive recorded it,
// or LOST with why.
func (r *Reaper) settleGone(ctx context.Context, lead Lead, l store.Live, ownerGone bool, why string) error {
	d := store.Settlement{ID: l.ID, Seen: l.Status, Lease: l.Lease, OwnerGone: ownerGone, To: job.Lost, Message: why}
	if r.archive != nil {
		a, err := store.ArchivedJob(ctx, r.archive, l.ID)
		switch {
		case err == nil && a.Status.Terminal() && job.CanTransition(l.Status, a.Status):
			d.To, d.Message, d.ExitCode = a.Status, a.Message, a.ExitCode
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err // the archive may hold it: try again next round
		}
	}
	if err := r.store.Settle(ctx, lead.Token, d); err != nil {
		return r.settleErr(l, err)
	}
	r.log.Warn("settled a job no worker can run any more", "job", l.ID, "was", l.Status, "now", d.To, "reason", d.Message)
	r.broker.PublishEvent(job.Event{ID: l.ID, Status: d.To, Message: d.Message, Attempt: l.Attempt, Worker: l.Worker, ExitCode: d.ExitCode, Time: r.cfg.Now().UTC()})
	metrics.JobFinished(l.Cluster, "", string(d.To), -1)
	return nil
}

// settleErr passes on what the leader must act on; a job that changed since
// it was read is fine: it is looked at again next round.
func (r *Reaper) settleErr(l store.Live, err error) error {
	var refused *store.RefusedError
	if errors.As(err, &refused) || errors.Is(err, store.ErrNotFound) {
		r.log.Debug("job changed before it was settled", "job", l.ID, "error", err)
		return nil
	}
	return err
}

// readmit finishes the admission of a job left ACCEPTED. Admission is
// idempotent by job id (the record, the QUEUED transition and the publish
// are each de-duplicated), so this is safe even if its first admission is
// still going on.
func (r *Reaper) readmit(ctx context.Context, l store.Live) error {
	j, err := r.store.Get(ctx, l.ID)
	if err != nil {
		return err
	}
	if j.Request == nil {
		return nil // a record without its request cannot be admitted; leave it
	}
	req := *j.Request
	req.ID = j.ID
	_, _, err = r.admit.Admit(ctx, &req)
	var rejected *RejectedError
	if err != nil && !errors.As(err, &rejected) {
		return fmt.Errorf("finish the admission of job %s: %w", l.ID, err)
	}
	r.log.Info("finished the admission of a job left ACCEPTED", "job", l.ID)
	return nil
}
