package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Every status change is appended to the job's history by the script that
// makes it, with the attempt, worker and message of that moment; the history
// expires with the job and keeps only the last HistoryKept changes.
func TestHistory(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.record("h1", "alice")
		accepted := f.clock.Now()
		f.clock.Advance(time.Second)
		f.transition("h1", job.Queued, nil, store.Update{Cluster: "local"})
		f.heartbeat("w1", time.Minute)
		lease := job.Lease{Seq: 7, Delivery: 1}
		f.clock.Advance(time.Second)
		if out, _ := f.claim("h1", "w1", lease); out != store.ClaimOK {
			t.Fatalf("claim: %s", out)
		}
		f.transition("h1", job.Running, &lease, store.Update{})
		f.clock.Advance(time.Second)
		f.transition("h1", job.Failed, &lease, store.Update{Message: "exit status 3"})

		h, err := f.s.History(f.ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		want := []job.Event{
			{ID: "h1", Status: job.Accepted, Time: accepted},
			{ID: "h1", Status: job.Queued, Time: accepted.Add(time.Second)},
			{ID: "h1", Status: job.Claimed, Attempt: 1, Worker: "w1", Time: accepted.Add(2 * time.Second)},
			{ID: "h1", Status: job.Running, Attempt: 1, Worker: "w1", Time: accepted.Add(2 * time.Second)},
			{ID: "h1", Status: job.Failed, Attempt: 1, Worker: "w1", Message: "exit status 3", Time: accepted.Add(3 * time.Second)},
		}
		if len(h) != len(want) {
			t.Fatalf("history = %+v\nwant %+v", h, want)
		}
		for i := range want {
			if h[i].Status != want[i].Status || h[i].Attempt != want[i].Attempt || h[i].Worker != want[i].Worker ||
				h[i].Message != want[i].Message || !h[i].Time.Equal(want[i].Time) || h[i].ID != "h1" {
				t.Errorf("history[%d] = %+v, want %+v", i, h[i], want[i])
			}
		}
		ttl, err := rdb.TTL(f.ctx, jobKey("h1")+":history").Result()
		if err != nil || ttl <= retention-5*time.Second || ttl > retention {
			t.Errorf("history TTL = %v, %v; want the retention %v", ttl, err, retention)
		}

		// A job with no record has no history; a deleted job loses its own.
		if h, err := f.s.History(f.ctx, "nope"); err != nil || len(h) != 0 {
			t.Errorf("History(nope) = %v, %v; want empty", h, err)
		}
		f.record("h2", "alice")
		if err := f.s.Delete(f.ctx, "h2"); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.Exists(f.ctx, jobKey("h2")+":history").Result(); n != 0 {
			t.Error("Delete left the job's history behind")
		}

		// Only the last HistoryKept changes are kept: a job that goes back
		// to CLAIMED again and again (its workers die) cannot grow it.
		f.record("h3", "alice")
		f.transition("h3", job.Queued, nil, store.Update{Cluster: "local"})
		for i := range store.HistoryKept {
			f.transition("h3", job.Claimed, nil, store.Update{Message: fmt.Sprint(i)})
		}
		h, err = f.s.History(f.ctx, "h3")
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != store.HistoryKept || h[0].Status != job.Claimed || h[0].Message != "0" || h[len(h)-1].Message != fmt.Sprint(store.HistoryKept-1) {
			t.Errorf("history of %d entries from %+v to %+v; want the last %d", len(h), h[0], h[len(h)-1], store.HistoryKept)
		}
	})
}

// A tag filter keeps the jobs whose request carries the tag.
func TestListByTag(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		for i, tags := range [][]string{{"etl", "nightly"}, nil, {"nightly"}, {"etl"}} {
			req := newRequest(fmt.Sprintf("t%d", i), "alice")
			req.Tags = tags
			f.recordReq(req)
		}
		f.record("bob1", "bob")
		for _, c := range []struct {
			f    store.Filter
			want []string
		}{
			{store.Filter{Tag: "nightly"}, []string{"t2", "t0"}},
			{store.Filter{Tag: "etl", User: "alice"}, []string{"t3", "t0"}},
			{store.Filter{Tag: "etl", Limit: 1}, []string{"t3"}},
			{store.Filter{Tag: "none"}, nil},
		} {
			jobs, _, err := f.s.List(f.ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(jobs); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("List(%+v) = %v, want %v", c.f, got, c.want)
			}
		}
	})
}
