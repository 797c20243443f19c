package e2e

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
)

func withEnforce(mode string) option { return func(c *fleet.Config) { c.Enforce = mode } }

func withAdmission(a scheduler.Config) option { return func(c *fleet.Config) { c.Admission = a } }

// hogJob allocates and touches mib MiB with perl (perl-base is part of
// every Debian), then sleeps so that a poller sees it.
func hogJob(mib, memory int) job.Request {
	return job.Request{Command: []string{"type:exec"}, Memory: memory,
		Args: []string{"perl", "-e", `$x = "a" x (` + strconv.Itoa(mib) + ` << 20); sleep 30`}}
}

// A job over its memory ends FAILED with the reason, under each enforcement
// this host has; a job within it succeeds with its measured peak.
func TestJobOverItsMemoryFails(t *testing.T) {
	for _, mode := range []string{"auto", "watchdog"} {
		t.Run(mode, func(t *testing.T) {
			s := start(t, withEnforce(mode))
			kind := s.Workers[0].Enforcement()
			if mode == "auto" && !strings.HasPrefix(kind, "cgroup") {
				if os.Getenv("CI") == "true" {
					t.Fatalf("CI=true but the worker enforces memory by %s: the CI machines have a writable cgroup v1 memory hierarchy", kind)
				}
				t.Skipf("no cgroup per job on this host (the worker uses %s; under CI=true this fails)", kind)
			}
			t.Logf("enforcement: %s", kind)
			over := s.submit(hogJob(300, 50))
			within := s.submit(job.Request{Command: []string{"type:exec"}, Memory: 100,
				Args: []string{"perl", "-e", `$x = "a" x (30 << 20); select(undef, undef, undef, 0.5)`}})
			j := s.wait(over.ID, 30*time.Second)
			if j.Status != job.Failed || j.Message != "memory limit exceeded (50 MiB)" {
				t.Fatalf("a job over its memory: %s %q", j.Status, j.Message)
			}
			if j.Peak < 50 {
				t.Errorf("peak of the job over its memory: %d MiB", j.Peak)
			}
			j = s.wait(within.ID, 30*time.Second)
			if j.Status != job.Succeeded || j.Peak < 30 || j.Peak > 100 {
				t.Fatalf("a job within its memory: %s %q, peak %d MiB (want 30 to 100)", j.Status, j.Message, j.Peak)
			}
		})
	}
}

// Job memory comes from the request, else the command, else the global
// default; a job larger than every worker that could take it is refused at
// submit with the numbers.
func TestJobMemoryAndTheLargestWorker(t *testing.T) {
	s := start(t, withAllowance(1000), withAdmission(scheduler.Config{DefaultMemory: 64}))
	waitFor(t, 10*time.Second, func() bool {
		ws, err := s.Store.Workers(context.Background())
		return err == nil && len(ws) == 1 && len(ws[0].Clusters) > 0
	})
	cmd := job.Command{Name: "big", Tags: []string{"type:big"}, Executable: []string{"true"}, Memory: 3000}
	if code := s.do("PUT", "/api/v1/commands/big", cmd, nil); code != http.StatusCreated {
		t.Fatalf("put command: %d", code)
	}

	if j := s.submit(job.Request{Command: []string{"type:exec"}, Args: []string{"true"}}); j.Memory != 64 {
		t.Errorf("no memory anywhere: %d MiB, want the global default 64", j.Memory)
	}
	if j := s.submit(job.Request{Command: []string{"type:big"}, Memory: 500}); j.Memory != 500 {
		t.Errorf("memory in the request: %d MiB, want 500", j.Memory)
	}

	var e apiErr
	code := s.do("POST", "/api/v1/jobs", job.Request{Command: []string{"type:big"}}, &e)
	want := "job needs 3000 MiB of memory but the largest worker serving cluster local gives jobs 1000 MiB"
	if code != http.StatusUnprocessableEntity || !strings.Contains(e.Error.Message, want) {
		t.Fatalf("the command's 3000 MiB: %d %q", code, e.Error.Message)
	}
	if e.Job == nil || e.Job.Status != job.Invalid || e.Job.Message != e.Error.Message {
		t.Fatalf("the refused job is recorded INVALID with the reason: %+v", e.Job)
	}
	code = s.do("POST", "/api/v1/jobs", job.Request{Command: []string{"type:exec"}, Memory: 1001, Args: []string{"true"}}, &e)
	if code != http.StatusUnprocessableEntity || !strings.Contains(e.Error.Message, "1001 MiB") || !strings.Contains(e.Error.Message, "at most 1000 MiB") {
		t.Fatalf("1001 MiB: %d %q", code, e.Error.Message)
	}
	if j := s.submit(job.Request{Command: []string{"type:exec"}, Memory: 1000, Args: []string{"true"}}); s.wait(j.ID, 20*time.Second).Status != job.Succeeded {
		t.Fatal("a job of exactly the allowance must run")
	}
}

// Genie's active-limit: a user with too many unfinished jobs is refused with
// 429 over HTTP; a request on jinn.submit is held, and admitted once the user
// has room.
func TestUserActiveLimit(t *testing.T) {
	s := start(t, withAdmission(scheduler.Config{UserActiveLimit: 2, UserLimits: map[string]int{"etl": 3, "root": 0}}))
	sleeper := func(user string) job.Request {
		return job.Request{User: user, Command: []string{"type:exec"}, Memory: 10, Args: []string{"sleep", "60"}}
	}
	var running []string
	defer func() { // leave no sleeper for the fleet's shutdown to wait on
		for _, id := range running {
			s.do("DELETE", "/api/v1/jobs/"+id, nil, nil)
		}
	}()
	submit := func(user string) *job.Job {
		t.Helper()
		j := s.submit(sleeper(user))
		running = append(running, j.ID)
		return j
	}
	a1 := submit("alice")
	submit("alice")
	var body struct {
		apiErr
		Limit struct {
			User   string `json:"user"`
			Limit  int    `json:"limit"`
			Active int    `json:"active"`
		} `json:"limit"`
	}
	code := s.do("POST", "/api/v1/jobs", sleeper("alice"), &body)
	if code != http.StatusTooManyRequests || body.Error.Code != "too_many_active_jobs" ||
		body.Limit.User != "alice" || body.Limit.Limit != 2 || body.Limit.Active != 2 ||
		!strings.Contains(body.Error.Message, "at most 2") {
		t.Fatalf("alice's third job: %d %+v", code, body)
	}
	// The same request again (same id) is not a new job: it is answered.
	again := sleeper("alice")
	again.ID = a1.ID
	if code := s.do("POST", "/api/v1/jobs", again, nil); code != http.StatusOK {
		t.Fatalf("resubmitting an existing job at the limit: %d", code)
	}
	for i := 0; i < 3; i++ {
		submit("etl") // etl's own limit is 3
	}
	if code := s.do("POST", "/api/v1/jobs", sleeper("etl"), &body); code != http.StatusTooManyRequests || body.Limit.Limit != 3 {
		t.Fatalf("etl's fourth job: %d %+v", code, body)
	}
	for i := 0; i < 3; i++ {
		submit("root") // no limit for root; none for jobs without a user
		submit("")
	}

	// On jinn.submit, alice's third request is held, not lost and not INVALID.
	ctx := context.Background()
	held := sleeper("alice")
	held.ID = "held-by-the-limit"
	if err := s.Broker.PublishSubmit(ctx, &held); err != nil {
		t.Fatal(err)
	}
	cons, err := s.Broker.SubmitConsumer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.Delivered.Stream > 0 && info.NumAckPending == 1
	})
	if _, err := s.Store.Get(ctx, held.ID); err == nil {
		t.Fatal("a held request was recorded")
	}
	// A job of alice ends: the held request gets her room.
	s.do("DELETE", "/api/v1/jobs/"+a1.ID, nil, nil)
	waitFor(t, 20*time.Second, func() bool {
		j, err := s.Store.Get(ctx, held.ID)
		return err == nil && !j.Status.Terminal()
	})
	running = append(running, held.ID)
	if n, err := s.Store.ActiveJobs(ctx, "alice"); err != nil || n != 2 {
		t.Fatalf("alice's unfinished jobs: %d %v, want 2", n, err)
	}
	// Alice is at her limit again.
	if code := s.do("POST", "/api/v1/jobs", sleeper("alice"), nil); code != http.StatusTooManyRequests {
		t.Fatalf("alice at the limit again: %d", code)
	}
}
