package scheduler_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// BenchmarkDecideScale is the autoscaler's decision for one pool of n
// workers, the pure part of a leader's tick (the rest is reading the
// heartbeats, measured by `jinn bench`).
func BenchmarkDecideScale(b *testing.B) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			snap := job.PoolSnapshot{Time: now, Desired: n, WaitingMemory: 4096, WaitingJobs: 8}
			for i := range n {
				snap.Workers = append(snap.Workers, job.Worker{ID: fmt.Sprintf("w%05d", i), Pool: "default", Clusters: []string{"local"},
					Allowance: 1000, Reserved: 100 * (i % 10), State: job.WorkerActive, Started: now.Add(-time.Hour)})
			}
			h := job.ScaleHistory{Seen: now.Add(-10 * time.Second)}
			pol := scalePolicy
			pol.Max = 2 * n
			b.ReportAllocs()
			for b.Loop() {
				d, _ := job.DecideScale(snap, h, pol)
				if d.Desired < 1 {
					b.Fatalf("decision %+v", d)
				}
			}
		})
	}
}

// BenchmarkDecideScaleOverMax is the decision that picks a worker to drain
// (the pool is above its maximum), which walks every worker once more.
func BenchmarkDecideScaleOverMax(b *testing.B) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	snap := job.PoolSnapshot{Time: now, Desired: 10000}
	for i := range 10000 {
		snap.Workers = append(snap.Workers, job.Worker{ID: fmt.Sprintf("w%05d", i), Pool: "default", Clusters: []string{"local"},
			Allowance: 1000, Reserved: 100 * (i % 10), State: job.WorkerActive, Started: now.Add(-time.Hour)})
	}
	b.ReportAllocs()
	for b.Loop() {
		d, _ := job.DecideScale(snap, job.ScaleHistory{}, scalePolicy)
		if d.Action != job.ScaleDown || d.Drain != "w00000" {
			b.Fatalf("decision %+v", d)
		}
	}
}
