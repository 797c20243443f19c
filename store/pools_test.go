package store_test

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// queue records job id and moves it to QUEUED for cluster with mem MiB.
func (f *fixture) queue(id, cluster string, mem int) {
	f.t.Helper()
	f.record(id, "alice")
	f.transition(id, job.Queued, nil, store.Update{Cluster: cluster, Memory: mem})
}

func (f *fixture) waiting() map[string]store.Waiting {
	f.t.Helper()
	w, err := f.s.Waiting(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return w
}

func (f *fixture) checkWaiting() (counted, indexed int) {
	f.t.Helper()
	c, i, err := f.s.CheckWaiting(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return c, i
}

// Every way out of QUEUED takes a job's memory off its cluster's waiting
// count, in the same script that changes its status.
func TestWaiting(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.queue("q1", "big", 1000)
		f.queue("q2", "big", 500)
		f.queue("q3", "big", 250)
		f.queue("q4", "small", 100)
		f.queue("q5", "small", 100)
		f.record("a1", "alice") // ACCEPTED: not waiting yet
		want := map[string]store.Waiting{"big": {Memory: 1750, Jobs: 3}, "small": {Memory: 200, Jobs: 2}}
		if got := f.waiting(); !reflect.DeepEqual(got, want) {
			t.Fatalf("waiting %v, want %v", got, want)
		}
		f.claim("q1", "w1", job.Lease{Seq: 1, Delivery: 1})    // claimed
		if _, _, _, err := f.s.Kill(f.ctx, "q2"); err != nil { // killed while queued
			t.Fatal(err)
		}
		f.transition("q4", job.Invalid, nil, store.Update{Message: "no"}) // settled
		if err := f.s.Delete(f.ctx, "q5"); err != nil {                   // deleted
			t.Fatal(err)
		}
		want = map[string]store.Waiting{"big": {Memory: 250, Jobs: 1}}
		if got := f.waiting(); !reflect.DeepEqual(got, want) {
			t.Fatalf("waiting %v after claim, kill, settle and delete; want %v", got, want)
		}
		if c, i := f.checkWaiting(); c != 1 || i != 1 {
			t.Fatalf("check: counted %d, indexed %d; want 1 and 1", c, i)
		}
	})
}

// Counts that Redis lost are noticed and rebuilt from the QUEUED index.
func TestRecountWaiting(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		for i := range 5 {
			f.queue("r"+strconv.Itoa(i), "c"+strconv.Itoa(i%2), 100*(i+1))
		}
		rdb.Del(f.ctx, testPrefix+"waiting:memory", testPrefix+"waiting:jobs")
		rdb.Del(f.ctx, jobKey("r4")) // its record is gone, its index entry stays
		if c, i := f.checkWaiting(); c != 0 || i != 5 {
			t.Fatalf("check: counted %d, indexed %d; want 0 and 5", c, i)
		}
		n, err := f.s.RecountWaiting(f.ctx)
		if err != nil || n != 4 {
			t.Fatalf("recount = %d, %v; want 4", n, err)
		}
		want := map[string]store.Waiting{"c0": {Memory: 100 + 300, Jobs: 2}, "c1": {Memory: 200 + 400, Jobs: 2}}
		if got := f.waiting(); !reflect.DeepEqual(got, want) {
			t.Fatalf("waiting %v after recount, want %v", got, want)
		}
		if c, i := f.checkWaiting(); c != 4 || i != 4 {
			t.Fatalf("check after recount: counted %d, indexed %d; want 4 and 4", c, i)
		}
	})
}

func TestSavePool(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		dec := func(i int) *job.ScaleDecision {
			return &job.ScaleDecision{Time: at.Add(time.Duration(i) * time.Second), Action: job.ScaleUp, Rule: job.RuleHigh,
				Reason: "decision " + strconv.Itoa(i), Size: i, Desired: i + 1, Since: at,
				Inputs: job.ScaleInputs{Active: i, Allowance: 1000, Reserved: 700, Load: 0.7}}
		}
		p := &job.Pool{Name: "gpu", Provider: "local", Clusters: []string{"a", "b"},
			Policy: job.ScalePolicy{Min: 1, Max: 3, Window: time.Minute}, Size: 2, Starting: 1, Desired: 3,
			Draining: []string{"w9"}, Last: dec(1), History: job.ScaleHistory{Seen: at, HighSince: at.Add(-time.Minute), LastUp: at},
			Updated: at}
		for i := 1; i <= store.DecisionsKept+5; i++ {
			if err := f.s.SavePool(f.ctx, 7, p, dec(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.s.SavePool(f.ctx, 7, &job.Pool{Name: "cpu", Desired: 1, Updated: at}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.Pool(f.ctx, "gpu", 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Decisions) != 3 || got.Decisions[0].Reason != "decision 205" || got.Decisions[2].Reason != "decision 203" {
			t.Fatalf("decisions %+v, want the newest 3, newest first", got.Decisions)
		}
		if !reflect.DeepEqual(got.Decisions[0], *dec(205)) {
			t.Fatalf("decision read back\n%+v\nwant\n%+v", got.Decisions[0], *dec(205))
		}
		got.Decisions = nil
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("pool read back\n%+v\nwant\n%+v", got, p)
		}
		if n, _ := rdb.LLen(f.ctx, testPrefix+"pool:gpu:decisions").Result(); n != store.DecisionsKept {
			t.Fatalf("%d decisions kept, want %d", n, store.DecisionsKept)
		}
		all, err := f.s.Pools(f.ctx, 1)
		if err != nil || len(all) != 2 || all[0].Name != "cpu" || all[1].Name != "gpu" || len(all[1].Decisions) != 1 {
			t.Fatalf("pools %+v, %v; want cpu and gpu with one decision each at most", all, err)
		}
		if _, err := f.s.Pool(f.ctx, "nope", 0); !errors.Is(err, store.ErrNoPool) {
			t.Fatalf("missing pool: %v, want ErrNoPool", err)
		}

		// A newer leader has written: the older one is refused.
		if err := f.s.Lead(f.ctx, 8); err != nil {
			t.Fatal(err)
		}
		if err := f.s.SavePool(f.ctx, 7, p, dec(1)); !errors.Is(err, store.ErrStaleLeader) {
			t.Fatalf("save by an older leader: %v, want ErrStaleLeader", err)
		}
		if err := f.s.SavePool(f.ctx, 8, p, nil); err != nil {
			t.Fatalf("save by the newest leader: %v", err)
		}
	})
}
