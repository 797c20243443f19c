package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// The per-user active set follows every way a job can finish, so the count
// the limit reads cannot drift from the records.
func TestUserActiveLimit(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		s := store.New(rdb, store.Config{Prefix: "ul:"})
		record := func(id, user string, limit int) error {
			_, err := s.RecordWithin(ctx, &job.Job{ID: id, User: user, Request: &job.Request{ID: id, User: user, Command: []string{"type:exec"}}}, limit)
			return err
		}
		active := func(want int) {
			t.Helper()
			if n, err := s.ActiveJobs(ctx, "alice"); err != nil || n != want {
				t.Fatalf("alice has %d unfinished jobs (%v), want %d", n, err, want)
			}
		}
		limited := func(err error, active int) {
			t.Helper()
			var le *store.ActiveLimitError
			if !errors.As(err, &le) || le.User != "alice" || le.Limit != 4 || le.Active != active {
				t.Fatalf("want a limit error with %d active, got %v", active, err)
			}
		}
		for i := 1; i <= 4; i++ {
			if err := record(fmt.Sprint("j", i), "alice", 4); err != nil {
				t.Fatal(err)
			}
		}
		active(4)
		limited(record("j5", "alice", 4), 4)
		if _, err := s.Get(ctx, "j5"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a job over the limit was recorded: %v", err)
		}
		if err := record("j1", "alice", 4); err != nil {
			t.Fatalf("the same request again is not a new job: %v", err)
		}
		if err := record("bob-1", "bob", 4); err != nil {
			t.Fatalf("another user: %v", err)
		}
		if err := record("anon", "", 1); err != nil || record("anon-2", "", 1) != nil {
			t.Fatalf("a job without a user is not limited: %v", err)
		}

		// Each way out of the active set: INVALID, killed before it ran,
		// finished after running, deleted.
		if err := s.Transition(ctx, "j1", job.Invalid, nil, store.Update{Message: "no"}); err != nil {
			t.Fatal(err)
		}
		active(3)
		if err := s.Transition(ctx, "j2", job.Queued, nil, store.Update{Cluster: "c"}); err != nil {
			t.Fatal(err)
		}
		active(3)
		if out, _, _, err := s.Kill(ctx, "j2"); err != nil || out != store.KillDone {
			t.Fatalf("kill: %s %v", out, err)
		}
		active(2)
		if err := s.Transition(ctx, "j3", job.Queued, nil, store.Update{Cluster: "c"}); err != nil {
			t.Fatal(err)
		}
		lease := job.Lease{Seq: 1, Delivery: 1}
		if out, _, err := s.Claim(ctx, "j3", "w", lease); err != nil || out != store.ClaimOK {
			t.Fatalf("claim: %s %v", out, err)
		}
		for _, st := range []job.Status{job.Init, job.Running} {
			if err := s.Transition(ctx, "j3", st, &lease, store.Update{}); err != nil {
				t.Fatal(err)
			}
			active(2)
		}
		if err := s.Transition(ctx, "j3", job.Succeeded, &lease, store.Update{}); err != nil {
			t.Fatal(err)
		}
		active(1)
		if err := s.Delete(ctx, "j4"); err != nil {
			t.Fatal(err)
		}
		active(0)

		// A record lost behind the set's back (deleted by hand) does not
		// lock the user out: at the limit, the set is checked.
		for i := 6; i <= 9; i++ {
			if err := record(fmt.Sprint("j", i), "alice", 4); err != nil {
				t.Fatal(err)
			}
		}
		limited(record("j10", "alice", 4), 4)
		if err := rdb.Del(ctx, "ul:job:j6").Err(); err != nil {
			t.Fatal(err)
		}
		if err := record("j10", "alice", 4); err != nil {
			t.Fatalf("a ghost in the set kept the user at the limit: %v", err)
		}
		active(4)
	})
}
