package scheduler

import (
	"context"
	"time"
)

// A Duty is fleet-wide work that exactly one scheduler, the leader, does at an
// interval: the reaper of lost jobs, timeouts, the autoscaler. The leader
// (leader.go) starts its duties when it wins an election and stops them when
// it loses its lease.
type Duty interface {
	// Name identifies the duty in logs and metrics.
	Name() string
	// Interval is the time between two ticks.
	Interval() time.Duration
	// Tick does one round of the duty. ctx ends when leadership is lost.
	Tick(ctx context.Context, lead Lead) error
}

// Lead is the leadership a tick runs under. Token is the revision of the
// leader's entry in the jinn_leader bucket: it grows with every new leader,
// so a write carrying it can be refused once a newer leader has written.
type Lead struct {
	Token uint64
}
