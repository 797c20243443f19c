package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/internal/redistest"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// The tests of this file are the store's conformance suite: each runs against
// miniredis and a real redis-server (redistest.Backends).

func TestRecord(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		req := newRequest("j1", "alice")
		req.Name = "nightly"
		req.Memory = 512
		req.Tags = []string{"b", "a"}
		f.recordReq(req)

		j := f.get("j1")
		if j.ID != "j1" || j.Name != "nightly" || j.User != "alice" || j.Memory != 512 {
			t.Errorf("recorded job = %+v", j)
		}
		if j.Status != job.Accepted || j.Attempt != 0 || j.Worker != "" || j.KillRequested {
			t.Errorf("new job: status %s attempt %d worker %q kill %v", j.Status, j.Attempt, j.Worker, j.KillRequested)
		}
		if j.Created == nil || !j.Created.Equal(f.clock.Now()) {
			t.Errorf("created = %v, want %v", j.Created, f.clock.Now())
		}
		if j.Request == nil || j.Request.Fingerprint() != req.Fingerprint() {
			t.Errorf("request did not round-trip: %+v", j.Request)
		}
		if !f.active("j1") {
			t.Error("a new job is not in the active set")
		}

		t.Run("same request exists", func(t *testing.T) {
			again := newRequest("j1", "alice")
			again.Name = "nightly"
			again.Memory = 512
			again.Tags = []string{"a", "b", "a"} // same tag set: same fingerprint
			created, err := f.s.Record(f.ctx, &job.Job{ID: "j1", Name: "renamed", User: "alice", Request: again})
			if err != nil || created {
				t.Fatalf("Record again = %v, %v; want false, nil", created, err)
			}
			if got := f.get("j1"); got.Name != "nightly" {
				t.Errorf("an existing job was overwritten: name %q", got.Name)
			}
		})
		t.Run("different request conflicts", func(t *testing.T) {
			other := newRequest("j1", "alice")
			other.Args = []string{"rm", "-rf", "/"}
			created, err := f.s.Record(f.ctx, &job.Job{ID: "j1", User: "alice", Request: other})
			if !errors.Is(err, store.ErrConflict) || created {
				t.Fatalf("Record different = %v, %v; want ErrConflict", created, err)
			}
			if got := f.get("j1"); got.Request.Fingerprint() != req.Fingerprint() {
				t.Error("a conflicting record replaced the request")
			}
		})
		t.Run("exists after it finished", func(t *testing.T) {
			f.moveTo("j1", job.Invalid)
			created, err := f.s.Record(f.ctx, &job.Job{ID: "j1", Name: "nightly", User: "alice", Request: req})
			if err != nil || created {
				t.Fatalf("Record of a finished job = %v, %v; want false, nil", created, err)
			}
			if got := f.get("j1").Status; got != job.Invalid {
				t.Errorf("status = %s, want INVALID untouched", got)
			}
		})
	})
}

func TestDefaultPrefix(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixtureWith(t, rdb, store.Config{})
		f.recordReq(newRequest("j1", ""))
		if n := rdb.Exists(f.ctx, "jinn:job:j1").Val(); n != 1 {
			t.Fatal("the default prefix is not jinn:")
		}
		if ttl := rdb.TTL(f.ctx, "jinn:job:j1").Val(); ttl != -1 {
			t.Errorf("an unfinished job has TTL %v, want none", ttl)
		}
		if err := f.s.Transition(f.ctx, "j1", job.Invalid, nil, store.Update{}); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.TTL(f.ctx, "jinn:job:j1").Val(); ttl < 7*24*time.Hour-5*time.Second || ttl > 7*24*time.Hour {
			t.Errorf("default retention: TTL %v, want 7 days", ttl)
		}
	})
}

func TestGetMissing(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		if _, err := f.s.Get(f.ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing: %v, want ErrNotFound", err)
		}
		if err := f.s.Transition(f.ctx, "nope", job.Queued, nil, store.Update{}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Transition missing: %v, want ErrNotFound", err)
		}
		if err := f.s.Delete(f.ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delete missing: %v, want ErrNotFound", err)
		}
	})
}

// TestTransitionMatrix tries every (from, to) pair of statuses: the store
// allows exactly what job.Sources allows and refuses the rest with a
// *RefusedError naming the current status, changing nothing.
func TestTransitionMatrix(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		for _, from := range job.Statuses {
			for _, to := range job.Statuses {
				id := strings.ToLower(fmt.Sprintf("%s-%s", from, to))
				id = strings.ReplaceAll(id, "_", "-")
				f.record(id, "u")
				f.moveTo(id, from)
				f.clock.Advance(time.Second)
				before := f.raw(id)
				err := f.s.Transition(f.ctx, id, to, nil, store.Update{Message: "moved"})

				allowed := false
				for _, s := range job.Sources(to) {
					allowed = allowed || s == from
				}
				if allowed {
					if err != nil {
						t.Errorf("%s -> %s: %v, want allowed", from, to, err)
						continue
					}
					j := f.get(id)
					if j.Status != to || j.Message != "moved" {
						t.Errorf("%s -> %s: status %s message %q", from, to, j.Status, j.Message)
					}
					if to.Terminal() {
						f.checkTerminal(id)
					} else if !f.active(id) {
						t.Errorf("%s -> %s: not in the active set", from, to)
					}
					continue
				}
				var refused *store.RefusedError
				if !errors.As(err, &refused) {
					t.Errorf("%s -> %s: %v, want a *RefusedError", from, to, err)
					continue
				}
				if refused.ID != id || refused.Current != from || refused.Proposed != to {
					t.Errorf("%s -> %s: refused %+v", from, to, refused)
				}
				if after := f.raw(id); !maps.Equal(before, after) {
					t.Errorf("%s -> %s: a refused transition changed the job:\nbefore %v\nafter  %v", from, to, before, after)
				}
			}
		}
	})
}

func TestTransitionFields(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.record("j1", "alice")

		f.clock.Advance(time.Second)
		queuedAt := f.clock.Now()
		f.transition("j1", job.Queued, nil, store.Update{Cluster: "spark", Command: "spark-submit", Memory: 2048})
		f.claim("j1", "w1", job.Lease{Seq: 1, Delivery: 1})
		lease := &job.Lease{Seq: 1, Delivery: 1}
		f.transition("j1", job.Init, lease, store.Update{})
		f.clock.Advance(time.Second)
		startedAt := f.clock.Now()
		f.transition("j1", job.Running, lease, store.Update{})
		f.clock.Advance(time.Second)
		f.transition("j1", job.Succeeded, lease, store.Update{ExitCode: intp(0), Peak: 300, Message: "done"})

		j := f.get("j1")
		if j.Cluster != "spark" || j.Command != "spark-submit" || j.Memory != 2048 || j.Peak != 300 || j.Message != "done" {
			t.Errorf("fields: %+v", j)
		}
		if j.ExitCode == nil || *j.ExitCode != 0 {
			t.Errorf("exit code = %v, want 0 (zero is a value, not absent)", j.ExitCode)
		}
		if j.Queued == nil || !j.Queued.Equal(queuedAt) {
			t.Errorf("queued = %v, want %v", j.Queued, queuedAt)
		}
		if j.Started == nil || !j.Started.Equal(startedAt) {
			t.Errorf("started = %v, want %v", j.Started, startedAt)
		}
		f.checkTerminal("j1")
	})
}

// TestLeaseFencing: a write carrying a lease that does not own the job is
// refused with ErrStale and changes nothing.
func TestLeaseFencing(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.record("j1", "alice")
		f.moveTo("j1", job.Queued)

		// A lease on a job nobody claimed owns nothing.
		if err := f.s.Transition(f.ctx, "j1", job.Claimed, &job.Lease{Seq: 7, Delivery: 1}, store.Update{}); !errors.Is(err, store.ErrStale) {
			t.Fatalf("fenced write before any claim: %v, want ErrStale", err)
		}

		lease := job.Lease{Seq: 7, Delivery: 1}
		if out, attempt := f.claim("j1", "w1", lease); out != store.ClaimOK || attempt != 1 {
			t.Fatalf("claim = %s %d", out, attempt)
		}
		before := f.raw("j1")
		for _, stale := range []job.Lease{{Seq: 7, Delivery: 2}, {Seq: 8, Delivery: 1}, {}} {
			for _, to := range []job.Status{job.Init, job.Running, job.Failed, job.Killed} {
				err := f.s.Transition(f.ctx, "j1", to, &stale, store.Update{Message: "late", ExitCode: intp(1)})
				if !errors.Is(err, store.ErrStale) {
					t.Errorf("lease %+v to %s: %v, want ErrStale", stale, to, err)
				}
			}
		}
		if after := f.raw("j1"); !maps.Equal(before, after) {
			t.Errorf("stale writes changed the job:\nbefore %v\nafter  %v", before, after)
		}
		f.transition("j1", job.Init, &lease, store.Update{})
	})
}

func TestClaim(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		t.Run("claimed", func(t *testing.T) {
			f := newFixture(t, rdb)
			f.record("c1", "alice")
			f.moveTo("c1", job.Queued)
			f.clock.Advance(time.Second)
			out, attempt := f.claim("c1", "w1", job.Lease{Seq: 42, Delivery: 3})
			if out != store.ClaimOK || attempt != 1 {
				t.Fatalf("claim = %s, %d; want claimed, 1", out, attempt)
			}
			j := f.get("c1")
			if j.Status != job.Claimed || j.Worker != "w1" || j.Attempt != 1 {
				t.Errorf("after claim: status %s worker %q attempt %d", j.Status, j.Worker, j.Attempt)
			}
			if lease := f.raw("c1")["lease"]; lease != "42.3" {
				t.Errorf("lease recorded = %q, want 42.3", lease)
			}
			if !f.active("c1") {
				t.Error("a claimed job is not active")
			}
		})
		t.Run("claimed from accepted", func(t *testing.T) {
			// The message can reach a worker before the scheduler marks the
			// job QUEUED (a resumed admission): it is claimed all the same.
			f := newFixture(t, rdb)
			f.record("c2", "alice")
			if out, attempt := f.claim("c2", "w1", job.Lease{Seq: 1, Delivery: 1}); out != store.ClaimOK || attempt != 1 {
				t.Fatalf("claim = %s, %d; want claimed, 1", out, attempt)
			}
		})
		t.Run("retried claim of the same delivery", func(t *testing.T) {
			// go-redis retries a command after a network error, so a claim
			// may run twice for one delivery: the second must not say busy.
			f := newFixture(t, rdb)
			f.record("c3", "alice")
			f.moveTo("c3", job.Queued)
			f.heartbeat("w1", time.Minute)
			lease := job.Lease{Seq: 5, Delivery: 1}
			f.claim("c3", "w1", lease)
			if out, attempt := f.claim("c3", "w1", lease); out != store.ClaimOK || attempt != 1 {
				t.Fatalf("second claim of one delivery = %s, %d; want claimed, 1", out, attempt)
			}
			if j := f.get("c3"); j.Attempt != 1 {
				t.Errorf("attempt = %d, want 1", j.Attempt)
			}
		})
		t.Run("missing", func(t *testing.T) {
			f := newFixture(t, rdb)
			if out, _ := f.claim("nope", "w1", job.Lease{Seq: 1, Delivery: 1}); out != store.ClaimMissing {
				t.Fatalf("claim = %s, want missing", out)
			}
		})
		t.Run("terminal", func(t *testing.T) {
			f := newFixture(t, rdb)
			for _, st := range job.Statuses {
				if !st.Terminal() {
					continue
				}
				id := "t-" + strings.ToLower(strings.ReplaceAll(string(st), "_", "-"))
				f.record(id, "alice")
				f.moveTo(id, st)
				before := f.raw(id)
				if out, _ := f.claim(id, "w1", job.Lease{Seq: 1, Delivery: 1}); out != store.ClaimTerminal {
					t.Errorf("claim of a %s job = %s, want terminal", st, out)
				}
				if after := f.raw(id); !maps.Equal(before, after) {
					t.Errorf("claim of a %s job changed it", st)
				}
			}
		})
		t.Run("busy", func(t *testing.T) {
			f := newFixture(t, rdb)
			f.record("c4", "alice")
			f.moveTo("c4", job.Queued)
			f.heartbeat("w1", time.Minute)
			f.claim("c4", "w1", job.Lease{Seq: 1, Delivery: 1})
			for _, st := range []job.Status{job.Claimed, job.Init, job.Running} {
				if st != job.Claimed {
					f.transition("c4", st, &job.Lease{Seq: 1, Delivery: 1}, store.Update{})
				}
				before := f.raw("c4")
				if out, attempt := f.claim("c4", "w2", job.Lease{Seq: 1, Delivery: 2}); out != store.ClaimBusy || attempt != 1 {
					t.Errorf("claim of a %s job with a live owner = %s, %d; want busy, 1", st, out, attempt)
				}
				if after := f.raw("c4"); !maps.Equal(before, after) {
					t.Errorf("a busy claim changed the job")
				}
			}
		})
	})
}

// TestReclaimAfterOwnerDied is the fencing guarantee end to end: the owner's
// heartbeat expires, the redelivered message starts attempt 2, and a late
// write of attempt 1 is refused.
func TestReclaimAfterOwnerDied(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.record("j1", "alice")
		f.moveTo("j1", job.Queued)
		f.heartbeat("w1", 100*time.Millisecond)
		old := job.Lease{Seq: 9, Delivery: 1}
		f.claim("j1", "w1", old)
		f.transition("j1", job.Init, &old, store.Update{})
		f.transition("j1", job.Running, &old, store.Update{Message: "attempt 1 running"})

		redistest.AwaitExpiry(t, rdb, workerKey("w1"))
		f.heartbeat("w2", time.Minute)
		cur := job.Lease{Seq: 9, Delivery: 2}
		out, attempt := f.claim("j1", "w2", cur)
		if out != store.ClaimOK || attempt != 2 {
			t.Fatalf("re-claim = %s, %d; want claimed, 2", out, attempt)
		}
		j := f.get("j1")
		if j.Status != job.Claimed || j.Worker != "w2" || j.Attempt != 2 || j.Started != nil || j.Message != "" {
			t.Errorf("after re-claim: %+v", j)
		}

		before := f.raw("j1")
		for _, to := range []job.Status{job.Init, job.Running, job.Succeeded, job.Failed} {
			err := f.s.Transition(f.ctx, "j1", to, &old, store.Update{ExitCode: intp(0)})
			if !errors.Is(err, store.ErrStale) {
				t.Errorf("late write of attempt 1 to %s: %v, want ErrStale", to, err)
			}
		}
		if after := f.raw("j1"); !maps.Equal(before, after) {
			t.Errorf("late writes changed the job:\nbefore %v\nafter  %v", before, after)
		}

		f.transition("j1", job.Init, &cur, store.Update{})
		f.transition("j1", job.Running, &cur, store.Update{})
		f.transition("j1", job.Succeeded, &cur, store.Update{ExitCode: intp(0)})
		f.checkTerminal("j1")
	})
}

func TestClaimLost(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		for _, tc := range []struct {
			retries  *int
			attempts int // attempts that start before the job is LOST
		}{
			{retries: intp(0), attempts: 1},
			{retries: intp(1), attempts: 2},
			{retries: nil, attempts: 1 + job.DefaultRetries},
		} {
			name := "default"
			if tc.retries != nil {
				name = fmt.Sprint(*tc.retries)
			}
			t.Run("retries="+name, func(t *testing.T) {
				f := newFixture(t, rdb)
				id := "lost-" + name
				req := newRequest(id, "alice")
				req.Retries = tc.retries
				f.recordReq(req)
				f.moveTo(id, job.Queued)
				var owner string
				for n := 1; n <= tc.attempts; n++ {
					owner = fmt.Sprintf("w%d", n)
					f.heartbeat(owner, 100*time.Millisecond)
					out, attempt := f.claim(id, owner, job.Lease{Seq: 1, Delivery: uint64(n)})
					if out != store.ClaimOK || attempt != n {
						t.Fatalf("claim %d = %s, %d; want claimed, %d", n, out, attempt, n)
					}
					redistest.AwaitExpiry(t, rdb, workerKey(owner))
				}
				f.clock.Advance(time.Second)
				out, attempt := f.claim(id, "w-last", job.Lease{Seq: 1, Delivery: uint64(tc.attempts + 1)})
				if out != store.ClaimLost || attempt != tc.attempts {
					t.Fatalf("claim after the last owner died = %s, %d; want lost, %d", out, attempt, tc.attempts)
				}
				j := f.get(id)
				if j.Status != job.Lost || !strings.Contains(j.Message, owner) {
					t.Errorf("lost job: status %s message %q (want it to name worker %s)", j.Status, j.Message, owner)
				}
				f.checkTerminal(id)
			})
		}
	})
}

func TestKill(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		t.Run("missing", func(t *testing.T) {
			f := newFixture(t, rdb)
			out, _, _, err := f.s.Kill(f.ctx, "nope")
			if err != nil || out != store.KillMissing {
				t.Fatalf("Kill = %s, %v; want missing", out, err)
			}
		})
		t.Run("terminal", func(t *testing.T) {
			f := newFixture(t, rdb)
			f.record("k1", "alice")
			f.moveTo("k1", job.Succeeded)
			before := f.raw("k1")
			out, st, _, err := f.s.Kill(f.ctx, "k1")
			if err != nil || out != store.KillTerminal || st != job.Succeeded {
				t.Fatalf("Kill = %s, %s, %v; want terminal, SUCCEEDED", out, st, err)
			}
			if after := f.raw("k1"); !maps.Equal(before, after) {
				t.Error("a kill of a finished job changed it")
			}
		})
		for _, from := range []job.Status{job.Accepted, job.Queued} {
			t.Run("killed from "+string(from), func(t *testing.T) {
				f := newFixture(t, rdb)
				id := "k2-" + strings.ToLower(string(from))
				f.record(id, "alice")
				f.moveTo(id, from)
				f.clock.Advance(time.Second)
				out, st, worker, err := f.s.Kill(f.ctx, id)
				if err != nil || out != store.KillDone || st != from || worker != "" {
					t.Fatalf("Kill = %s, %s, %q, %v; want killed, %s", out, st, worker, err, from)
				}
				j := f.get(id)
				if j.Status != job.Killed || !j.KillRequested || j.Message == "" {
					t.Errorf("killed job: %+v", j)
				}
				f.checkTerminal(id)
				// Its message is still queued: the claim drops it.
				if out, _ := f.claim(id, "w1", job.Lease{Seq: 1, Delivery: 1}); out != store.ClaimTerminal {
					t.Errorf("claim of a killed job = %s, want terminal", out)
				}
			})
		}
		t.Run("signal", func(t *testing.T) {
			f := newFixture(t, rdb)
			f.record("k3", "alice")
			f.moveTo("k3", job.Queued)
			f.heartbeat("w1", time.Minute)
			lease := job.Lease{Seq: 3, Delivery: 1}
			f.claim("k3", "w1", lease)
			out, st, worker, err := f.s.Kill(f.ctx, "k3")
			if err != nil || out != store.KillSignal || st != job.Claimed || worker != "w1" {
				t.Fatalf("Kill = %s, %s, %q, %v; want signal, CLAIMED, w1", out, st, worker, err)
			}
			j := f.get("k3")
			if j.Status != job.Claimed || !j.KillRequested {
				t.Errorf("after a kill request: status %s kill %v", j.Status, j.KillRequested)
			}
			// The worker may not progress it any more...
			for _, to := range []job.Status{job.Init, job.Running} {
				before := f.raw("k3")
				if err := f.s.Transition(f.ctx, "k3", to, &lease, store.Update{}); !errors.Is(err, store.ErrKillRequested) {
					t.Errorf("to %s after a kill request: %v, want ErrKillRequested", to, err)
				}
				if after := f.raw("k3"); !maps.Equal(before, after) {
					t.Errorf("a refused %s changed the job", to)
				}
			}
			// ...a redelivery while it is alive leaves the job to it...
			if out, _ := f.claim("k3", "w2", job.Lease{Seq: 3, Delivery: 2}); out != store.ClaimBusy {
				t.Errorf("claim while the owner is alive = %s, want busy", out)
			}
			// ...and it ends it as KILLED.
			f.clock.Advance(time.Second)
			f.transition("k3", job.Killed, &lease, store.Update{Message: "killed on request", ExitCode: intp(-1)})
			f.checkTerminal("k3")
			if out, _, _, _ := f.s.Kill(f.ctx, "k3"); out != store.KillTerminal {
				t.Errorf("second kill = %s, want terminal", out)
			}
		})
		t.Run("signal while running", func(t *testing.T) {
			f := newFixture(t, rdb)
			f.record("k4", "alice")
			f.moveTo("k4", job.Queued)
			lease := job.Lease{Seq: 4, Delivery: 1}
			f.claim("k4", "w1", lease)
			f.transition("k4", job.Init, &lease, store.Update{})
			f.transition("k4", job.Running, &lease, store.Update{})
			out, st, worker, err := f.s.Kill(f.ctx, "k4")
			if err != nil || out != store.KillSignal || st != job.Running || worker != "w1" {
				t.Fatalf("Kill = %s, %s, %q, %v; want signal, RUNNING, w1", out, st, worker, err)
			}
			// A final status other than KILLED is still allowed: the process
			// may have ended on its own before the signal reached it.
			f.transition("k4", job.Succeeded, &lease, store.Update{ExitCode: intp(0)})
			f.checkTerminal("k4")
		})
		t.Run("killed at claim after the owner died", func(t *testing.T) {
			// The kill reached a dead worker; the next claim settles it.
			f := newFixture(t, rdb)
			f.record("k5", "alice")
			f.moveTo("k5", job.Queued)
			f.heartbeat("w5", 100*time.Millisecond)
			f.claim("k5", "w5", job.Lease{Seq: 5, Delivery: 1})
			if out, _, worker, _ := f.s.Kill(f.ctx, "k5"); out != store.KillSignal || worker != "w5" {
				t.Fatalf("Kill = %s, %q; want signal, w5", out, worker)
			}
			redistest.AwaitExpiry(t, rdb, workerKey("w5"))
			f.clock.Advance(time.Second)
			out, attempt := f.claim("k5", "w2", job.Lease{Seq: 5, Delivery: 2})
			if out != store.ClaimKilled || attempt != 1 {
				t.Fatalf("claim = %s, %d; want killed, 1", out, attempt)
			}
			j := f.get("k5")
			if j.Status != job.Killed || j.Worker != "w5" || j.Attempt != 1 || !strings.Contains(j.Message, "w5") {
				t.Errorf("job killed at claim: %+v", j)
			}
			f.checkTerminal("k5")
		})
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.record("keep", "alice")
		f.record("d1", "alice")
		f.transition("d1", job.Queued, nil, store.Update{Cluster: "local"})
		if err := f.s.Delete(f.ctx, "d1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Get(f.ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
		}
		if f.active("d1") {
			t.Error("a deleted job is still active")
		}
		for _, flt := range []store.Filter{{}, {User: "alice"}, {Status: job.Queued}, {Cluster: "local"}} {
			jobs, _, err := f.s.List(f.ctx, flt)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				if j.ID == "d1" {
					t.Errorf("List(%+v) still has the deleted job", flt)
				}
			}
		}
		for _, key := range []string{allKey(), testPrefix + "jobs:user:alice", testPrefix + "jobs:status:QUEUED", testPrefix + "jobs:cluster:local"} {
			if _, err := rdb.ZScore(f.ctx, key, "d1").Result(); !errors.Is(err, redis.Nil) {
				t.Errorf("%s still indexes the deleted job (%v)", key, err)
			}
		}
		// It may be submitted again, even with another request.
		other := newRequest("d1", "bob")
		other.Args = []string{"true"}
		f.recordReq(other)
		if j := f.get("d1"); j.User != "bob" || j.Status != job.Accepted {
			t.Errorf("re-recorded job: %+v", j)
		}
		if j := f.get("keep"); j.Status != job.Accepted {
			t.Error("Delete touched another job")
		}
	})
}

// ids returns the ids of jobs in order.
func ids(jobs []job.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func TestList(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		// j1..j7, oldest first: users alternate, odd ones are queued on
		// cluster "spark", j7 was lost.
		for n := 1; n <= 7; n++ {
			id := fmt.Sprintf("j%d", n)
			user := "alice"
			if n%2 == 0 {
				user = "bob"
			}
			f.record(id, user)
			if n%2 == 1 {
				f.transition(id, job.Queued, nil, store.Update{Cluster: "spark"})
			}
		}
		f.transition("j7", job.Lost, nil, store.Update{})

		list := func(flt store.Filter) ([]string, string) {
			t.Helper()
			jobs, next, err := f.s.List(f.ctx, flt)
			if err != nil {
				t.Fatalf("List(%+v): %v", flt, err)
			}
			return ids(jobs), next
		}
		for _, tc := range []struct {
			name string
			flt  store.Filter
			want string
		}{
			{"all newest first", store.Filter{}, "j7 j6 j5 j4 j3 j2 j1"},
			{"by user", store.Filter{User: "bob"}, "j6 j4 j2"},
			{"by status", store.Filter{Status: job.Queued}, "j5 j3 j1"},
			{"by status accepted", store.Filter{Status: job.Accepted}, "j6 j4 j2"},
			{"by cluster", store.Filter{Cluster: "spark"}, "j7 j5 j3 j1"},
			{"user and status", store.Filter{User: "alice", Status: job.Lost}, "j7"},
			{"user and cluster", store.Filter{User: "bob", Cluster: "spark"}, ""},
			{"status and cluster", store.Filter{Status: job.Queued, Cluster: "spark"}, "j5 j3 j1"},
			{"no match", store.Filter{User: "carol"}, ""},
		} {
			got, next := list(tc.flt)
			if strings.Join(got, " ") != tc.want || next != "" {
				t.Errorf("%s: List = %v next %q; want [%s] and no next page", tc.name, got, next, tc.want)
			}
		}

		t.Run("paging", func(t *testing.T) {
			seen := map[string]bool{}
			var sizes []int
			var order []string
			flt := store.Filter{Limit: 3}
			for page := 0; ; page++ {
				if page > 5 {
					t.Fatal("paging does not end")
				}
				got, next := list(flt)
				sizes = append(sizes, len(got))
				for _, id := range got {
					if seen[id] {
						t.Errorf("page %d repeats %s", page, id)
					}
					seen[id] = true
				}
				order = append(order, got...)
				if next == "" {
					break
				}
				flt.Cursor = next
			}
			if fmt.Sprint(sizes) != "[3 3 1]" || strings.Join(order, " ") != "j7 j6 j5 j4 j3 j2 j1" {
				t.Errorf("pages of 3: sizes %v order %v; want [3 3 1] newest first", sizes, order)
			}
		})
		t.Run("paging a filter", func(t *testing.T) {
			got, next := list(store.Filter{Cluster: "spark", Limit: 2})
			if strings.Join(got, " ") != "j7 j5" || next == "" {
				t.Fatalf("page 1 = %v next %q", got, next)
			}
			got, next = list(store.Filter{Cluster: "spark", Limit: 2, Cursor: next})
			if strings.Join(got, " ") != "j3 j1" {
				t.Fatalf("page 2 = %v next %q", got, next)
			}
			if next != "" {
				if got, _ := list(store.Filter{Cluster: "spark", Limit: 2, Cursor: next}); len(got) != 0 {
					t.Errorf("page 3 = %v, want empty", got)
				}
			}
		})
		t.Run("bad cursor", func(t *testing.T) {
			for _, c := range []string{"abc", "12x", "1.", ".a", " 1", "-"} {
				if _, _, err := f.s.List(f.ctx, store.Filter{Cursor: c}); err == nil {
					t.Errorf("cursor %q: no error", c)
				}
			}
		})
		t.Run("limits", func(t *testing.T) {
			if got, _ := list(store.Filter{Limit: -1}); len(got) != 7 {
				t.Errorf("a limit <= 0 takes the default: got %d jobs", len(got))
			}
			if got, _ := list(store.Filter{Limit: 5000}); len(got) != 7 {
				t.Errorf("a huge limit: got %d jobs", len(got))
			}
		})
	})
}

// TestListSameTime pages through jobs created in the same microsecond: the
// cursor must not skip or repeat any of them.
func TestListSameTime(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.record("a0", "alice")
		for n := 1; n <= 5; n++ {
			req := newRequest(fmt.Sprintf("s%d", n), "alice")
			j := &job.Job{ID: req.ID, User: req.User, Request: req}
			if created, err := f.s.Record(f.ctx, j); err != nil || !created {
				t.Fatal(created, err)
			}
		}
		f.record("z9", "alice")
		want := "z9 s5 s4 s3 s2 s1 a0"
		for limit := 1; limit <= 8; limit++ {
			for _, flt := range []store.Filter{{Limit: limit}, {Limit: limit, User: "alice"}} {
				var order []string
				for page := 0; page < 20; page++ {
					jobs, next, err := f.s.List(f.ctx, flt)
					if err != nil {
						t.Fatal(err)
					}
					order = append(order, ids(jobs)...)
					if next == "" {
						break
					}
					flt.Cursor = next
				}
				if got := strings.Join(order, " "); got != want {
					t.Errorf("limit %d (%+v): pages gave %q, want %q", limit, flt, got, want)
				}
			}
		}
	})
}

// TestListPrunes: a job whose record expired (or vanished) leaves the index
// it was listed from.
func TestListPrunes(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixtureWith(t, rdb, store.Config{Prefix: testPrefix, Retention: time.Second})
		f.record("old", "alice")
		f.record("gone", "alice")
		f.record("new", "alice")
		f.moveTo("old", job.Invalid) // expires after the 1s retention
		redistest.AwaitExpiry(t, rdb, jobKey("old"))
		if err := rdb.Del(f.ctx, jobKey("gone")).Err(); err != nil { // Redis lost it
			t.Fatal(err)
		}

		jobs, _, err := f.s.List(f.ctx, store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(ids(jobs), " "); got != "new" {
			t.Fatalf("List = %q, want only new", got)
		}
		for _, id := range []string{"old", "gone"} {
			if _, err := rdb.ZScore(f.ctx, allKey(), id).Result(); !errors.Is(err, redis.Nil) {
				t.Errorf("%s is still in the index after a List walked it (%v)", id, err)
			}
		}
		// A page whose every entry expired still finds the live ones below.
		for n := 0; n < 4; n++ {
			f.record(fmt.Sprintf("x%d", n), "bob")
			if err := rdb.Del(f.ctx, jobKey(fmt.Sprintf("x%d", n))).Err(); err != nil {
				t.Fatal(err)
			}
		}
		jobs, next, err := f.s.List(f.ctx, store.Filter{Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(ids(jobs), " "); got != "new" || next != "" {
			t.Errorf("List past expired entries = %q next %q, want new", got, next)
		}
	})
}

// A worker restarted with the same id does not own what its earlier run
// claimed: the job gets a new attempt instead of waiting as "busy" forever.
func TestClaimAfterSameIDRestart(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, rdb *redis.Client) {
		f := newFixture(t, rdb)
		f.record("r1", "alice")
		f.moveTo("r1", job.Queued)
		ctx := context.Background()
		beat := func(inc string) {
			if err := f.s.Heartbeat(ctx, &job.Worker{ID: "w1", Incarnation: inc, State: job.WorkerActive}, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		beat("run-1")
		if out, _, err := f.s.ClaimAs(ctx, "r1", "w1", "run-1", job.Lease{Seq: 1, Delivery: 1}); err != nil || out != store.ClaimOK {
			t.Fatalf("first claim: %s %v", out, err)
		}
		// The same run is alive: another worker finds the job busy.
		if out, _, _ := f.s.ClaimAs(ctx, "r1", "w2", "x", job.Lease{Seq: 1, Delivery: 2}); out != store.ClaimBusy {
			t.Fatalf("claim while the owner runs: %s, want busy", out)
		}
		// w1 restarts: same id, new run.
		beat("run-2")
		out, attempt, err := f.s.ClaimAs(ctx, "r1", "w1", "run-2", job.Lease{Seq: 1, Delivery: 3})
		if err != nil || out != store.ClaimOK || attempt != 2 {
			t.Fatalf("claim after the restart: %s %d %v; want claimed, attempt 2", out, attempt, err)
		}
		// The earlier run's lease is stale now.
		if err := f.s.Transition(ctx, "r1", job.Init, &job.Lease{Seq: 1, Delivery: 1}, store.Update{}); !errors.Is(err, store.ErrStale) {
			t.Fatalf("write of the earlier run: %v, want ErrStale", err)
		}
	})
}
