package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
	"github.com/jinn-fleet/jinn/worker"
)

func withAckWait(d time.Duration) option { return func(c *fleet.Config) { c.AckWait = d } }

// withDataDir gives the fleet a data directory the test knows, for the
// processes it starts beside the fleet.
func withDataDir(dir string) option { return func(c *fleet.Config) { c.DataDir = dir } }

// jinn builds the jinn binary once per test run.
var jinn = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "jinn-e2e-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "jinn")
	// The same compile flags as the Dockerfile's build (and deploy's tests),
	// so that the packages compiled for one are reused by the other.
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/jinn-fleet/jinn/cmd/jinn")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// jinnBinary returns the built binary. Without a Go toolchain the test is
// skipped, except under CI=true, where it fails.
func jinnBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the go tool is needed to build jinn: %v", err)
		}
		t.Skipf("the go tool is needed to build jinn (under CI=true this fails): %v", err)
	}
	bin, err := jinn()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// spawnWorker runs `jinn worker` as a child process against the test's fleet.
func (s *sys) spawnWorker(t *testing.T, id, dataDir string, ackWait time.Duration) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(jinnBinary(t), "worker",
		"--id", id, "--nats", s.NATSURL, "--redis", s.RedisURL,
		"--archive", filepath.Join(dataDir, "archive"), "--data-dir", t.TempDir(),
		"--ack-wait", ackWait.String(), "--heartbeat", "200ms", "--kill-grace", "1s",
		"--job-memory", "1024", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "JINN_DATA="+t.TempDir())
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker %s said:\n%s", id, logs.String())
		}
	})
	return cmd
}

// addWorker starts one more in-process worker on the fleet.
func (s *sys) addWorker(t *testing.T, id string) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Config{ID: id, DataDir: t.TempDir(), Allowance: 1024, Heartbeat: 200 * time.Millisecond, KillGrace: time.Second},
		worker.Deps{Broker: s.Broker, Store: s.Store, Registry: s.Registry, Archive: s.Archive, URIs: s.URIs, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// A worker killed with SIGKILL in the middle of a job: after AckWait the job
// comes back, the next worker sees the owner's heartbeat gone and runs
// attempt 2, which succeeds; a write under attempt 1's lease is refused.
func TestWorkerSIGKILLRetries(t *testing.T) {
	const ackWait = 2 * time.Second
	dir := t.TempDir()
	s := start(t, withWorkers(-1), withAckWait(ackWait), withDataDir(dir))
	first := s.spawnWorker(t, "doomed", dir, ackWait)
	waitFor(t, 20*time.Second, func() bool { _, err := s.Store.Worker(context.Background(), "doomed"); return err == nil })

	trail := filepath.Join(t.TempDir(), "trail")
	j := s.submit(bash(`echo "start $JINN_ATTEMPT $JINN_WORKER" >> ` + trail + `
if [ "$JINN_ATTEMPT" = 1 ]; then exec sleep 60; fi
sleep 1; echo "end $JINN_ATTEMPT" >> ` + trail + `; echo attempt $JINN_ATTEMPT`))
	running := s.waitStatus(j.ID, job.Running, 20*time.Second)
	if running.Worker != "doomed" || running.Attempt != 1 {
		t.Fatalf("first attempt: %+v", running)
	}
	waitFor(t, 20*time.Second, func() bool { // the process is past its first line
		data, _ := os.ReadFile(trail)
		return strings.HasPrefix(string(data), "start 1")
	})
	_, lease1, err := s.Store.LeaseOf(context.Background(), j.ID)
	if err != nil || lease1 == nil {
		t.Fatalf("lease of attempt 1: %v %v", lease1, err)
	}
	killed := time.Now()
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	s.addWorker(t, "survivor")

	var second *job.Job
	waitFor(t, 20*time.Second, func() bool {
		second, _ = s.Store.Get(context.Background(), j.ID)
		return second != nil && (second.Attempt > 1 && second.Status == job.Running || second.Status.Terminal())
	})
	if second.Attempt != 2 || second.Worker != "survivor" || second.Status != job.Running {
		t.Fatalf("second attempt: %+v", second)
	}
	t.Logf("attempt 2 running %s after the SIGKILL", time.Since(killed).Round(time.Millisecond))
	// Attempt 1's late writes are refused while attempt 2 runs.
	for _, st := range []job.Status{job.Running, job.Failed, job.Succeeded} {
		if err := s.Store.Transition(context.Background(), j.ID, st, lease1, store.Update{Message: "late"}); !errors.Is(err, store.ErrStale) {
			t.Fatalf("a write of attempt 1 (%s): %v; want ErrStale", st, err)
		}
	}
	done := s.wait(j.ID, 20*time.Second)
	if done.Status != job.Succeeded || done.Attempt != 2 || done.Worker != "survivor" {
		t.Fatalf("final: %+v", done)
	}
	if out := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stdout"); out != "attempt 2\n" {
		t.Fatalf("stdout %q", out)
	}
	data, _ := os.ReadFile(trail)
	if got := string(data); got != "start 1 doomed\nstart 2 survivor\nend 2\n" {
		t.Fatalf("trail of the attempts:\n%s", got)
	}
}

// Redis flushed while jobs run and wait: nothing is lost. Running jobs get
// their records back from their workers, queued jobs when they are pulled,
// finished jobs are read from the archive; meanwhile the API never says 404.
func TestRedisFlushLosesNothing(t *testing.T) {
	const n = 16
	s := start(t, withWorkers(2), withAllowance(2*64))
	ids := make([]string, n)
	for i := range ids {
		req := bash(fmt.Sprintf("sleep 0.3; echo %d", i))
		req.Memory = 64
		ids[i] = s.submit(req).ID
	}
	ctx := context.Background()
	// Flush once some jobs finished and others run or wait.
	waitFor(t, 20*time.Second, func() bool {
		done := 0
		for _, id := range ids {
			if j, err := s.Store.Get(ctx, id); err == nil && j.Status == job.Succeeded {
				done++
			}
		}
		return done >= 3
	})
	s.Redis.FlushAll()

	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	recovering := 0
	waitFor(t, 20*time.Second, func() bool {
		for id := range pending {
			var body struct {
				job.Job
				Error *struct{ Code, Message string } `json:"error"`
			}
			code := s.do("GET", "/api/v1/jobs/"+id, nil, &body)
			switch {
			case code == http.StatusOK && body.Status == job.Succeeded:
				delete(pending, id)
			case code == http.StatusOK && !body.Status.Terminal():
			case code == http.StatusServiceUnavailable && body.Error != nil && body.Error.Code == "recovering":
				recovering++
			default:
				t.Fatalf("job %s after the flush: %d %+v %+v", id, code, body.Job, body.Error)
			}
		}
		return len(pending) == 0
	})
	for i, id := range ids {
		if out := s.get(t, "/api/v1/jobs/"+id+"/output/stdout"); out != strconv.Itoa(i)+"\n" {
			t.Errorf("job %d stdout %q", i, out)
		}
	}
	t.Logf("%d reads answered 'recovering'", recovering)
	// A job read from its archive is finished: a kill says so.
	var e apiErr
	if code := s.do("DELETE", "/api/v1/jobs/"+ids[0], nil, &e); code != http.StatusConflict || !strings.Contains(e.Error.Message, "SUCCEEDED") {
		t.Fatalf("kill of a finished job: %d %+v", code, e.Error)
	}
}

// A drain through the API, or `jinn drain`, stops the worker once its
// running job finished; the job succeeds.
func TestDrainThroughAPIAndCLI(t *testing.T) {
	s := start(t, withWorkers(2))
	a, b := s.Workers[0], s.Workers[1]
	j := s.submit(bash("sleep 1; echo drained"))
	running := s.waitStatus(j.ID, job.Running, 20*time.Second)
	owner, other := a, b
	if running.Worker == b.ID() {
		owner, other = b, a
	}
	var w job.Worker
	if code := s.do("POST", "/api/v1/workers/"+owner.ID()+"/drain", nil, &w); code != http.StatusAccepted || w.State != job.WorkerDraining {
		t.Fatalf("drain: %d %+v", code, w)
	}
	var e apiErr
	if code := s.do("POST", "/api/v1/workers/nobody/drain", nil, &e); code != http.StatusNotFound || !strings.Contains(e.Error.Message, "jinn workers") {
		t.Fatalf("drain of no worker: %d %+v", code, e)
	}
	if code := s.do("POST", "/api/v1/workers/a.b/drain", nil, &e); code != http.StatusBadRequest {
		t.Fatalf("drain of a bad name: %d %+v", code, e)
	}
	select {
	case <-owner.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the drained worker did not stop")
	}
	if done := s.wait(j.ID, 10*time.Second); done.Status != job.Succeeded || done.Attempt != 1 {
		t.Fatalf("job on the drained worker: %+v", done)
	}

	out, err := exec.Command(jinnBinary(t), "drain", "--server", s.URL, other.ID()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "DRAINING") {
		t.Fatalf("jinn drain: %v\n%s", err, out)
	}
	select {
	case <-other.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the worker drained by the CLI did not stop")
	}
	out, err = exec.Command(jinnBinary(t), "drain", "--server", s.URL, "gone-worker").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no live worker gone-worker") {
		t.Fatalf("jinn drain of no worker: %v\n%s", err, out)
	}
}

// Hostile bodies: nesting past any sane depth and names full of NATS
// wildcards and "..": each is a 4xx that names the problem, never a 500, and
// jinn goes on working.
func TestHostileBodies(t *testing.T) {
	s := start(t)
	deep := 100000
	cases := []struct{ name, body string }{
		{"nested metadata", `{"command":["type:exec"],"metadata":` + strings.Repeat("[", deep) + strings.Repeat("]", deep) + `}`},
		{"nested objects", `{"command":["type:exec"],"metadata":` + strings.Repeat(`{"a":`, deep) + "1" + strings.Repeat("}", deep) + `}`},
		{"nested args", `{"command":["type:exec"],"args":` + strings.Repeat("[", deep) + strings.Repeat("]", deep) + `}`},
		{"unclosed nesting", `{"command":["type:exec"],"metadata":` + strings.Repeat("[", deep)},
		{"wildcard id", `{"id":".*>","command":["type:exec"]}`},
		{"dotdot id", `{"id":"..","command":["type:exec"]}`},
		{"wildcard command tag", `{"command":["type:exec.*>"]}`},
		{"wildcard cluster tag", `{"command":["type:exec"],"clusters":[["*"],[">"]]}`},
		{"dotdot tag", `{"command":["../../etc"]}`},
		{"wildcard job tag", `{"command":["type:exec"],"tags":["a.*.>"]}`},
		{"wildcard env name", `{"command":["type:exec"],"env":{"A.*>":"x"}}`},
		{"many wildcards", `{"command":[` + strings.TrimSuffix(strings.Repeat(`".*>..",`, 5000), ",") + `]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e apiErr
			code := s.do("POST", "/api/v1/jobs", c.body, &e)
			if code < 400 || code >= 500 || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("got %d %+v; want a 4xx that says what is wrong", code, e.Error)
			}
		})
	}
	// Paths full of wildcards and "..".
	for _, p := range []string{"/api/v1/jobs/..", "/api/v1/jobs/.*%3E", "/api/v1/jobs/%2E%2E%2F%2E%2E", "/api/v1/workers/*/drain", "/api/v1/workers/%3E/drain"} {
		method := "GET"
		if strings.HasSuffix(p, "/drain") {
			method = "POST"
		}
		req, _ := http.NewRequest(method, s.URL+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode >= 500 {
			t.Errorf("%s %s: %d; want a refusal", method, p, resp.StatusCode)
		}
	}
	// Wildcards inside free metadata are data, not names: the job runs.
	req := bash("echo ok")
	req.Metadata = []byte(`{"subject":"jinn.jobs.*.>","path":"../../.."}`)
	if done := s.wait(s.submit(req).ID, 20*time.Second); done.Status != job.Succeeded {
		t.Fatalf("job with odd metadata: %+v", done)
	}
}
