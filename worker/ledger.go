package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// ledger is the worker's memory admission: the sum of the memory of its
// running jobs never exceeds its allowance. It is the only place that decides
// whether a job fits, and whether pulling could bring one that does.
//
// It also keeps a large job from starving behind a stream of small ones. A
// job handed back after waiting longer than Config.ReserveAfter is held: from
// then on the ledger admits another job only if it fits beside the held one,
// and pulls only once the held job would fit. Running jobs finish, their
// memory is not given away again, and the held job fits within the time the
// running jobs take.
type ledger struct {
	mu        sync.Mutex
	allowance int // MiB
	reserved  int // MiB
	draining  bool
	held      *heldJob
	changed   chan struct{} // closed and replaced whenever reserved, draining or held changes
}

// heldJob is a job the ledger keeps room for.
type heldJob struct {
	id    string
	mem   int
	since time.Time
}

func newLedger(allowance int) *ledger {
	return &ledger{allowance: allowance, changed: make(chan struct{})}
}

// reserve takes mem MiB for job id if they fit: within the allowance, and
// beside the held job unless id is the held job. It reports whether they did.
func (l *ledger) reserve(id string, mem int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	need := mem
	if l.held != nil && l.held.id != id {
		need += l.held.mem
	}
	if l.draining || mem < 0 || l.reserved+need > l.allowance {
		return false
	}
	l.reserved += mem
	if l.held != nil && l.held.id == id {
		l.held = nil
	}
	l.signal()
	return true
}

// release gives back mem MiB.
func (l *ledger) release(mem int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reserved -= mem
	l.signal()
}

// hold keeps room for job id of mem MiB, unless it could never fit here or
// room is kept for another job already. It reports whether room is kept for
// id now.
func (l *ledger) hold(id string, mem int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held != nil {
		return l.held.id == id
	}
	if l.draining || mem > l.allowance {
		return false
	}
	l.held = &heldJob{id: id, mem: mem, since: now}
	l.signal()
	return true
}

// unhold stops keeping room for job id (it ran elsewhere or ended).
func (l *ledger) unhold(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held != nil && l.held.id == id {
		l.held = nil
		l.signal()
	}
}

// holding returns the job room is kept for, if any.
func (l *ledger) holding() (heldJob, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		return heldJob{}, false
	}
	return *l.held, true
}

func (l *ledger) drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = true
	l.held = nil
	l.signal()
}

func (l *ledger) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// canFetch reports whether a pull could admit anything, and a channel closed
// at the next change, to wait on when it could not. While room is kept for a
// job, only a pull that could admit that job is worth making.
func (l *ledger) canFetch() (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	free := l.allowance - l.reserved
	ok := !l.draining && free > 0 && (l.held == nil || free >= l.held.mem)
	return ok, l.changed
}

func (l *ledger) state() (allowance, reserved int, draining bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allowance, l.reserved, l.draining
}

// handBack gives a job that does not fit back to its stream. It is not an
// attempt. A job that has waited longer than ReserveAfter since it was
// queued gets room kept for it on this worker (see ledger).
func (w *Worker) handBack(msg jetstream.Msg, spec *job.Spec, queued time.Time) {
	w.refused.Add(1)
	if waited := time.Since(queued); waited >= w.cfg.ReserveAfter {
		h, holding := w.ledger.holding()
		if (!holding || h.id != spec.ID) && w.ledger.hold(spec.ID, spec.Memory, time.Now()) {
			w.log.Info("keeping room for a job that waited too long: smaller jobs wait until it fits",
				"job", spec.ID, "memory_mib", spec.Memory, "waited", waited.Round(time.Millisecond))
		}
	}
	_ = msg.NakWithDelay(w.cfg.HandBack)
}

// pace waits, after a hand back, until the ledger changes (memory was
// released) or HandBack has passed, so that a worker without room does not
// fetch and hand back in a loop: a pull loop hands back at most one job per
// HandBack, plus one per change of the ledger. It reports false when ctx
// ended.
func (w *Worker) pace(ctx context.Context, changed <-chan struct{}) bool {
	t := time.NewTimer(w.cfg.HandBack)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return true
}

// awaitRoom waits until the ledger changes. While it keeps room for a job,
// it checks every HandBack that the job still waits (it may have run
// elsewhere, or been killed) and stops keeping room for it otherwise. It
// reports false when ctx ended.
func (w *Worker) awaitRoom(ctx context.Context, changed <-chan struct{}) bool {
	h, holding := w.ledger.holding()
	var check <-chan time.Time
	if holding {
		t := time.NewTimer(w.cfg.HandBack)
		defer t.Stop()
		check = t.C
	}
	select {
	case <-changed:
	case <-ctx.Done():
		return false
	case <-check:
		j, err := w.store.Get(ctx, h.id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && j.Status != job.Queued && j.Status != job.Accepted) {
			w.log.Debug("the job room was kept for no longer waits", "job", h.id)
			w.ledger.unhold(h.id)
		}
	}
	return true
}
