// Package scale holds the providers the autoscaler sizes worker pools with:
// local (child `jinn worker` processes on this host), aws (an EC2 Auto Scaling
// group per pool) and exec (an operator's command).
//
// A provider only starts and removes workers; it decides nothing. The
// autoscaler (scheduler/autoscale.go) decides a desired size, drains the
// worker it wants gone, and calls Remove once that worker has exited. A
// provider never picks a worker to stop by itself, so it can never stop one
// that runs jobs.
//
// It imports nothing of jinn.
package scale

import (
	"context"
	"errors"
	"time"
)

// Provider starts and removes the workers of pools.
type Provider interface {
	// Name is the provider's kind: local, aws or exec.
	Name() string
	// SetDesired asks for n workers in pool. It is absolute, so asking twice
	// for n starts nothing more. Below the count the provider has, it starts
	// nothing and stops nothing: workers leave through Remove, after their
	// drain.
	SetDesired(ctx context.Context, pool string, n int) error
	// Remove takes away a worker that has been drained and has exited (or
	// is exiting), and lowers the provider's count by one. Removing a worker
	// the provider does not have is not an error.
	Remove(ctx context.Context, pool, worker string) error
	// List returns the provider's workers of pool, or ErrNoList.
	List(ctx context.Context, pool string) ([]Instance, error)
}

// Protector is a provider that can keep its own scale-in away from workers
// that run jobs (EC2 Auto Scaling's scale-in protection).
type Protector interface {
	// Protect shields the workers of pool whose value in busy is true and
	// unshields those whose value is false; workers not in busy are left as
	// they are.
	Protect(ctx context.Context, pool string, busy map[string]bool) error
}

// ErrNoList is returned by List of a provider that cannot tell its workers
// (exec): the autoscaler then takes the workers it asked for and has not
// seen as starting, for a while.
var ErrNoList = errors.New("this provider cannot list its workers")

// Instance is one worker as its provider sees it.
type Instance struct {
	// ID is the worker's id: what it heartbeats as (for aws, the EC2
	// instance id, which the worker must be started with as --id).
	ID string `json:"id"`
	// State is the provider's word: starting, running, exited (local);
	// Pending, InService, Terminating... (aws).
	State string `json:"state"`
	// Live is whether it counts toward the pool: starting or running.
	Live    bool      `json:"live"`
	Started time.Time `json:"started,omitzero"`
	// Protected is whether the provider's own scale-in spares it.
	Protected bool `json:"protected,omitempty"`
}
