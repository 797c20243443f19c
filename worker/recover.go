package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Redis is soft state: when it restarts empty, a worker rebuilds the records
// of the jobs it holds. A job pulled without a record is re-recorded from its
// message before it is claimed; the record of a job that runs is written back
// from what its executor knows, on the next heartbeat or at its next status
// write, whichever comes first.

// attemptState is what an executor knows of its attempt beyond its spec:
// the status it last wrote and when it started. It is empty until the claim.
type attemptState struct {
	mu       sync.Mutex
	status   job.Status
	started  *time.Time
	finished *time.Time
	message  string
	exitCode *int
}

// set records a status written with u.
func (a *attemptState) set(st job.Status, u store.Update) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = st
	now := time.Now().UTC()
	if st == job.Running {
		a.started = &now
	}
	if st.Terminal() {
		a.finished, a.message, a.exitCode = &now, u.Message, u.ExitCode
	}
}

// fill writes what the attempt knows into j.
func (a *attemptState) fill(j *job.Job) {
	a.mu.Lock()
	defer a.mu.Unlock()
	j.Status, j.Started = a.status, a.started
	if a.status.Terminal() {
		j.Finished, j.Message, j.ExitCode = a.finished, a.message, a.exitCode
	}
}

func (a *attemptState) claimed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status != ""
}

// queuedRecovery is the record of a job rebuilt from its message alone:
// QUEUED, with no attempt, so that the claim that follows is attempt 1 of
// what jinn now knows. (An attempt before Redis was lost is not counted: its
// worker is gone or it would hold the message.)
func queuedRecovery(spec *job.Spec, published time.Time) store.Recovery {
	t := published.UTC()
	return store.Recovery{
		Job: &job.Job{
			ID: spec.ID, Name: spec.Name, User: spec.User, Status: job.Queued,
			Cluster: spec.Cluster, Command: spec.Command, Memory: spec.Memory,
			Created: &t, Queued: &t,
			Message: "record rebuilt from the job's message after Redis lost it",
		},
		Retries: spec.Retries, Fingerprint: spec.Fingerprint,
	}
}

// recovery is the record of the attempt e runs, or false before its claim.
func (e *executor) recovery() (store.Recovery, bool) {
	if !e.state.claimed() {
		return store.Recovery{}, false
	}
	var published time.Time
	if md, err := e.msg.Metadata(); err == nil {
		published = md.Timestamp
	}
	r := queuedRecovery(&e.spec, published)
	r.Job.Worker, r.Job.Attempt = e.w.cfg.ID, e.attempt
	r.Job.Message = "record rebuilt by worker " + e.w.cfg.ID + " after Redis lost it"
	e.state.fill(r.Job)
	r.Lease = &e.lease
	return r, true
}

// restore writes back the record of e's job if Redis lost it.
func (e *executor) restore(ctx context.Context) {
	r, ok := e.recovery()
	if !ok {
		return
	}
	restored, err := e.w.store.Restore(ctx, r)
	switch {
	case err != nil:
		e.log.Warn("restore the job's record", "error", err)
	case restored:
		e.log.Warn("Redis had lost the job's record; wrote it back", "status", r.Job.Status)
	}
}

// write is a status write under the attempt's lease. When Redis lost the
// record, it is written back from what the attempt knows and the write is
// made once more.
func (e *executor) write(ctx context.Context, to job.Status, u store.Update) error {
	err := e.w.store.Transition(ctx, e.spec.ID, to, &e.lease, u)
	if errors.Is(err, store.ErrNotFound) {
		e.restore(ctx)
		err = e.w.store.Transition(ctx, e.spec.ID, to, &e.lease, u)
	}
	if err == nil {
		e.state.set(to, u)
	}
	return err
}

// finalRecord reads the job's record for the archive; when Redis lost it
// since the final status was written, it is written back first.
func (e *executor) finalRecord(ctx context.Context) (*job.Job, error) {
	j, err := e.w.store.Get(ctx, e.spec.ID)
	if errors.Is(err, store.ErrNotFound) {
		e.restore(ctx)
		j, err = e.w.store.Get(ctx, e.spec.ID)
	}
	return j, err
}

// restoreRunning writes back the records of the jobs this worker runs that
// Redis lost; the heartbeat calls it.
func (w *Worker) restoreRunning(ctx context.Context) {
	w.mu.Lock()
	execs := make([]*executor, 0, len(w.running))
	for _, e := range w.running {
		execs = append(execs, e)
	}
	w.mu.Unlock()
	for _, e := range execs {
		e.restore(ctx)
	}
}

// keepLease extends the attempt's lease, every AckWait/3. It reports false
// when the attempt must stop now: the job's record names another attempt's
// lease (this worker was stopped or cut off, and the job was given to
// another), or the lease could not be extended and would run out before the
// next try. An extension counts only while connected: nats.go buffers a
// publish while it reconnects, so InProgress alone does not fail when cut off.
func (e *executor) keepLease(extended *time.Time, ackWait time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), ackWait/3)
	defer cancel()
	if st, lease, err := e.w.store.LeaseOf(ctx, e.spec.ID); err == nil && (st.Terminal() || lease == nil || *lease != e.lease) {
		e.log.Error("the job was settled or given to another attempt; killing this one", "status", st)
		return false
	}
	err := e.msg.InProgress()
	if err == nil && !e.w.broker.NC.IsConnected() {
		err = errors.New("not connected to NATS")
	}
	if err == nil {
		*extended = time.Now()
		return true
	}
	// The lease ends ackWait after the last extension; the next try is
	// ackWait/3 away, so stop while it is still ours.
	if time.Since(*extended) > ackWait-ackWait/3 {
		e.log.Error("lease about to expire while cut off from NATS; killing the attempt", "error", err)
		return false
	}
	e.log.Warn("lease not extended; will retry", "error", err)
	return true
}

// putRecord writes a finished job's record to the archive.
func (w *Worker) putRecord(ctx context.Context, j *job.Job) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return w.archive.Put(ctx, store.RecordKey(j.ID), bytes.NewReader(data))
}

// settled handles the message of a job that is already finished: its
// record is archived if it is not yet (its worker died between the final
// status and the archive), then the message is acked. On a failure the
// message is handed back, so a finished job is never dropped unarchived.
func (w *Worker) settled(msg jetstream.Msg, id string) {
	if w.archive != nil {
		err := retry(w.ctx, 3, func() error {
			o, err := w.archive.Open(w.ctx, store.RecordKey(id))
			if err == nil {
				o.Close()
				return nil
			}
			if !errors.Is(err, store.ErrNoObject) {
				return err
			}
			j, err := w.store.Get(w.ctx, id)
			if err != nil {
				return err
			}
			if !j.Status.Terminal() {
				return nil // changed meanwhile: nothing to archive now
			}
			return w.putRecord(w.ctx, j)
		})
		if err != nil {
			w.log.Warn("finished job's record not archived; handing its message back", "job", id, "error", err)
			_ = msg.NakWithDelay(w.cfg.HandBack)
			return
		}
	}
	_ = msg.Ack()
}

// retry calls fn up to n times, 200 ms apart and doubling, until it succeeds.
func retry(ctx context.Context, n int, fn func() error) error {
	var err error
	wait := 200 * time.Millisecond
	for i := 0; i < n; i++ {
		if err = fn(); err == nil {
			return nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		wait *= 2
	}
	return err
}
