package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

func workerIDs(ws []job.Worker) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.ID
	}
	return out
}

func (f *fixture) workers() []string {
	f.t.Helper()
	ws, err := f.s.Workers(f.ctx)
	if err != nil {
		f.t.Fatalf("Workers: %v", err)
	}
	return workerIDs(ws)
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		if got := f.workers(); len(got) != 0 {
			t.Fatalf("Workers of an empty fleet = %v", got)
		}
		started := f.clock.Now().Add(-time.Hour)
		w := &job.Worker{ID: "w2", Pool: "spark", Host: "ip-10-0-0-2", Clusters: []string{"spark", "local"},
			Allowance: 4096, Reserved: 1024, Jobs: []string{"j1"}, State: job.WorkerDraining, Version: "v1.2.3",
			Started: started, Heartbeat: f.clock.Now()}
		if err := f.s.Heartbeat(f.ctx, w, time.Minute); err != nil {
			t.Fatal(err)
		}
		f.heartbeat("w1", time.Minute)

		if got := fmt.Sprint(f.workers()); got != "[w1 w2]" {
			t.Fatalf("Workers = %s, want [w1 w2] ordered by id", got)
		}
		got, err := f.s.Worker(f.ctx, "w2")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("Worker(w2) = %+v\nwant %+v", got, w)
		}
		if _, err := f.s.Worker(f.ctx, "nope"); !errors.Is(err, store.ErrNoSuchWorker) {
			t.Errorf("Worker(nope): %v, want ErrNoSuchWorker", err)
		}

		// A heartbeat replaces the previous state and renews the TTL.
		w.Reserved, w.Jobs = 0, nil
		if err := f.s.Heartbeat(f.ctx, w, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.Worker(f.ctx, "w2"); got.Reserved != 0 || len(got.Jobs) != 0 {
			t.Errorf("after a second heartbeat: %+v", got)
		}
		if ttl := rdb.TTL(f.ctx, workerKey("w2")).Val(); ttl <= time.Minute || ttl > 2*time.Minute {
			t.Errorf("heartbeat TTL = %v, want about 2m", ttl)
		}
	})
}

func TestHeartbeatExpires(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		// Long enough that w1 is surely alive at the first listing, even on a
		// slow machine; AwaitExpiry fast-forwards miniredis past it.
		f.heartbeat("w1", time.Second)
		f.heartbeat("w2", time.Hour)
		if got := fmt.Sprint(f.workers()); got != "[w1 w2]" {
			t.Fatalf("Workers = %s", got)
		}
		redistest.AwaitExpiry(t, rdb, workerKey("w1"))
		if got := fmt.Sprint(f.workers()); got != "[w2]" {
			t.Fatalf("Workers after w1's heartbeat expired = %s, want [w2]", got)
		}
		if _, err := f.s.Worker(f.ctx, "w1"); !errors.Is(err, store.ErrNoSuchWorker) {
			t.Errorf("Worker(w1) after expiry: %v, want ErrNoSuchWorker", err)
		}
		// Workers pruned the dead worker from the index.
		if _, err := rdb.ZScore(f.ctx, testPrefix+"workers", "w1").Result(); !errors.Is(err, redis.Nil) {
			t.Errorf("w1 is still in the worker index (%v)", err)
		}
		// A worker that comes back is listed again.
		f.heartbeat("w1", time.Hour)
		if got := fmt.Sprint(f.workers()); got != "[w1 w2]" {
			t.Errorf("Workers after w1 came back = %s", got)
		}
	})
}

func TestRemoveWorker(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.heartbeat("w1", time.Hour)
		f.heartbeat("w2", time.Hour)
		if err := f.s.RemoveWorker(f.ctx, "w1"); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(f.workers()); got != "[w2]" {
			t.Errorf("Workers after RemoveWorker(w1) = %s", got)
		}
		if _, err := f.s.Worker(f.ctx, "w1"); !errors.Is(err, store.ErrNoSuchWorker) {
			t.Errorf("Worker(w1): %v, want ErrNoSuchWorker", err)
		}
		if err := f.s.RemoveWorker(f.ctx, "never-was"); err != nil {
			t.Errorf("RemoveWorker of an unknown worker: %v", err)
		}

		// A removed owner is a dead owner: its job may be claimed again.
		f.record("j1", "alice")
		f.moveTo("j1", job.Queued)
		f.claim("j1", "w2", job.Lease{Seq: 1, Delivery: 1})
		if out, _ := f.claim("j1", "w3", job.Lease{Seq: 1, Delivery: 2}); out != store.ClaimBusy {
			t.Fatalf("claim with a live owner = %s, want busy", out)
		}
		if err := f.s.RemoveWorker(f.ctx, "w2"); err != nil {
			t.Fatal(err)
		}
		if out, attempt := f.claim("j1", "w3", job.Lease{Seq: 1, Delivery: 3}); out != store.ClaimOK || attempt != 2 {
			t.Errorf("claim after the owner was removed = %s, %d; want claimed, 2", out, attempt)
		}
	})
}

func TestFreeByCluster(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		workers []job.Worker
		want    map[string]int64
	}{
		{"none", nil, map[string]int64{}},
		{"one", []job.Worker{
			{ID: "a", Clusters: []string{"spark"}, Allowance: 1000, Reserved: 300, State: job.WorkerActive},
		}, map[string]int64{"spark": 700}},
		{"sums per cluster", []job.Worker{
			{ID: "a", Clusters: []string{"spark", "local"}, Allowance: 1000, Reserved: 300, State: job.WorkerActive},
			{ID: "b", Clusters: []string{"spark"}, Allowance: 2000, State: job.WorkerActive},
		}, map[string]int64{"spark": 2700, "local": 700}},
		{"draining workers give nothing", []job.Worker{
			{ID: "a", Clusters: []string{"spark"}, Allowance: 1000, State: job.WorkerActive},
			{ID: "b", Clusters: []string{"spark", "local"}, Allowance: 5000, State: job.WorkerDraining},
			{ID: "c", Clusters: []string{"trino"}, Allowance: 5000, State: ""},
		}, map[string]int64{"spark": 1000}},
		{"full worker", []job.Worker{
			{ID: "a", Clusters: []string{"spark"}, Allowance: 1000, Reserved: 1000, State: job.WorkerActive},
		}, map[string]int64{"spark": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.FreeByCluster(tc.workers); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FreeByCluster = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFreeByClusterFromHeartbeats reads the fleet the way admission does.
func TestFreeByClusterFromHeartbeats(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		for _, w := range []*job.Worker{
			{ID: "a", Clusters: []string{"spark"}, Allowance: 1000, Reserved: 250, State: job.WorkerActive},
			{ID: "b", Clusters: []string{"spark"}, Allowance: 1000, State: job.WorkerDraining},
			{ID: "c", Clusters: []string{"spark", "local"}, Allowance: 500, State: job.WorkerActive},
		} {
			if err := f.s.Heartbeat(f.ctx, w, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		ws, err := f.s.Workers(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"spark": 1250, "local": 500}
		if got := store.FreeByCluster(ws); !reflect.DeepEqual(got, want) {
			t.Errorf("FreeByCluster = %v, want %v", got, want)
		}
	})
}
