package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// A record Redis lost is written back from what a worker knows, and the
// attempt that runs the job goes on writing under its lease.
func TestRestore(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		s := store.New(rdb, store.Config{Retention: time.Hour})
		req := &job.Request{ID: "r1", User: "ana", Command: []string{"type:exec"}, Args: []string{"true"}}
		created := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
		lease := job.Lease{Seq: 12, Delivery: 2}
		rec := store.Recovery{
			Job: &job.Job{ID: "r1", User: "ana", Name: "nightly", Status: job.Running, Cluster: "local", Command: "exec",
				Worker: "w1", Attempt: 2, Memory: 64, Created: &created, Started: &created},
			Lease: &lease, Retries: 3, Fingerprint: req.Fingerprint(),
		}
		ok, err := s.Restore(ctx, rec)
		if err != nil || !ok {
			t.Fatalf("Restore = %v, %v", ok, err)
		}
		j, err := s.Get(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != job.Running || j.Worker != "w1" || j.Attempt != 2 || j.Cluster != "local" || j.User != "ana" ||
			j.Name != "nightly" || j.Memory != 64 || j.Created == nil || !j.Created.Equal(created) {
			t.Fatalf("restored: %+v", j)
		}
		for _, f := range []store.Filter{{Status: job.Running}, {User: "ana"}, {Cluster: "local"}, {}} {
			list, _, err := s.List(ctx, f)
			if err != nil || len(list) != 1 || list[0].ID != "r1" {
				t.Fatalf("List(%+v) = %v, %v", f, list, err)
			}
		}
		st, l, err := s.LeaseOf(ctx, "r1")
		if err != nil || st != job.Running || l == nil || *l != lease {
			t.Fatalf("LeaseOf = %s %v %v", st, l, err)
		}
		// A record that exists is newer than the caller's knowledge.
		rec.Job.Status = job.Init
		if ok, err := s.Restore(ctx, rec); err != nil || ok {
			t.Fatalf("Restore over a record = %v, %v", ok, err)
		}
		// The same request submitted again finds the job.
		if created, err := s.Record(ctx, &job.Job{ID: "r1", User: "ana", Request: req}); err != nil || created {
			t.Fatalf("Record of the same request = %v, %v", created, err)
		}
		// Fencing holds on the restored record.
		stale := job.Lease{Seq: 12, Delivery: 1}
		if err := s.Transition(ctx, "r1", job.Succeeded, &stale, store.Update{}); !errors.Is(err, store.ErrStale) {
			t.Fatalf("stale write on a restored record: %v", err)
		}
		if err := s.Transition(ctx, "r1", job.Succeeded, &lease, store.Update{}); err != nil {
			t.Fatal(err)
		}
		var seen []string
		if err := s.ScanActive(ctx, 10, func(b []store.Live) error {
			for _, l := range b {
				seen = append(seen, l.ID)
			}
			return nil
		}); err != nil || len(seen) != 0 {
			t.Fatalf("active after the final status: %v %v", seen, err)
		}

		// A finished job written back expires like any finished job.
		done := &job.Job{ID: "r2", Status: job.Succeeded, Created: &created}
		if ok, err := s.Restore(ctx, store.Recovery{Job: done}); err != nil || !ok {
			t.Fatalf("Restore finished = %v, %v", ok, err)
		}
		if ttl := rdb.TTL(ctx, "jinn:job:r2").Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("ttl of a restored finished job: %s", ttl)
		}
	})
}

func TestLeaderToken(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		s := store.New(rdb, store.Config{})
		for _, tok := range []uint64{3, 3, 9} {
			if err := s.Lead(ctx, tok); err != nil {
				t.Fatalf("Lead(%d): %v", tok, err)
			}
		}
		if err := s.Lead(ctx, 8); !errors.Is(err, store.ErrStaleLeader) {
			t.Fatalf("Lead(8) after 9: %v", err)
		}
		if _, err := s.Record(ctx, &job.Job{ID: "a", Request: &job.Request{ID: "a", Command: []string{"x"}}}); err != nil {
			t.Fatal(err)
		}
		err := s.Settle(ctx, 8, store.Settlement{ID: "a", Seen: job.Accepted, To: job.Failed, Message: "x"})
		if !errors.Is(err, store.ErrStaleLeader) {
			t.Fatalf("settle of a stale leader: %v", err)
		}
		if err := s.Settle(ctx, 10, store.Settlement{ID: "a", Seen: job.Accepted, To: job.Failed, Message: "admission failed"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Lead(ctx, 9); !errors.Is(err, store.ErrStaleLeader) {
			t.Fatalf("a settle did not raise the token: %v", err)
		}
		j, _ := s.Get(ctx, "a")
		if j.Status != job.Failed || j.Message != "admission failed" {
			t.Fatalf("settled: %+v", j)
		}
	})
}

func TestScanActive(t *testing.T) {
	rdb := redistest.Mini(t)
	ctx := context.Background()
	s := store.New(rdb, store.Config{})
	want := map[string]bool{}
	for i := 0; i < 25; i++ {
		id := "j" + string(rune('a'+i))
		if _, err := s.Record(ctx, &job.Job{ID: id, Request: &job.Request{ID: id, Command: []string{"x"}}}); err != nil {
			t.Fatal(err)
		}
		want[id] = true
	}
	rdb.Del(ctx, "jinn:job:ja") // expired: pruned from the set
	delete(want, "ja")
	got := map[string]bool{}
	if err := s.ScanActive(ctx, 4, func(b []store.Live) error {
		for _, l := range b {
			if l.Status != job.Accepted || l.Created.IsZero() {
				t.Errorf("live %+v", l)
			}
			got[l.ID] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("scanned %d jobs; want %d", len(got), len(want))
	}
	if rdb.SIsMember(ctx, "jinn:jobs:active", "ja").Val() {
		t.Fatal("a job without a record stayed in the active set")
	}
}
