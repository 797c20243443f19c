package worker

import "sync"

// ledger is the worker's memory admission: the sum of the memory of its
// running jobs never exceeds its allowance. It is the only place that decides
// whether a job fits.
type ledger struct {
	mu        sync.Mutex
	allowance int // MiB
	reserved  int // MiB
	draining  bool
	changed   chan struct{} // closed and replaced whenever reserved or draining changes
}

func newLedger(allowance int) *ledger {
	return &ledger{allowance: allowance, changed: make(chan struct{})}
}

// reserve takes mem MiB if they fit, and reports whether they did.
func (l *ledger) reserve(mem int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining || l.reserved+mem > l.allowance {
		return false
	}
	l.reserved += mem
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

func (l *ledger) drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = true
	l.signal()
}

func (l *ledger) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// canFetch reports whether a pull could admit anything, and a channel closed
// at the next change, to wait on when it could not.
func (l *ledger) canFetch() (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.draining && l.reserved < l.allowance, l.changed
}

func (l *ledger) state() (allowance, reserved int, draining bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allowance, l.reserved, l.draining
}
