package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

func bash(script string) job.Request {
	return job.Request{Command: []string{"type:bash"}, Args: []string{script}}
}

func TestHelloWorld(t *testing.T) {
	s := start(t)
	j := s.submit(job.Request{Name: "hello", User: "alice", Command: []string{"type:exec"}, Args: []string{"echo", "hello"}})
	if j.Status == job.Accepted || j.Status == job.Invalid || j.Cluster != "local" || j.Command != "exec" || j.Memory != 256 {
		t.Fatalf("submitted job: %+v", j)
	}
	done := s.wait(j.ID, 20*time.Second)
	if done.Status != job.Succeeded || done.ExitCode == nil || *done.ExitCode != 0 || done.Attempt != 1 || done.Worker != "local-1" {
		t.Fatalf("final: %+v", done)
	}
	if done.Started == nil || done.Finished == nil || done.Queued == nil || done.Finished.Before(*done.Started) {
		t.Fatalf("times: %+v", done)
	}
	if out := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stdout"); out != "hello\n" {
		t.Fatalf("stdout %q", out)
	}
}

func (s *sys) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, out)
	}
	return string(out)
}

func TestExitCodesAndEnvironment(t *testing.T) {
	s := start(t)
	cases := []struct {
		script  string
		status  job.Status
		code    int
		message string
	}{
		{"exit 0", job.Succeeded, 0, ""},
		{"exit 3", job.Failed, 3, "exit code 3"},
		{"kill -9 $$", job.Failed, 137, "killed by signal killed"},
	}
	for _, c := range cases {
		j := s.submit(bash(c.script))
		done := s.wait(j.ID, 20*time.Second)
		if done.Status != c.status || done.ExitCode == nil || *done.ExitCode != c.code || done.Message != c.message {
			t.Errorf("%q: got %s code %v message %q, want %s %d %q", c.script, done.Status, deref(done.ExitCode), done.Message, c.status, c.code, c.message)
		}
	}
	missing := s.submit(job.Request{Command: []string{"type:exec"}, Args: []string{"/no/such/program"}})
	done := s.wait(missing.ID, 20*time.Second)
	if done.Status != job.Failed || !strings.Contains(done.Message, "no such file") {
		t.Errorf("missing program: %+v", done)
	}

	req := bash(`echo "$JINN_JOB_ID $JINN_CLUSTER $JINN_COMMAND $JINN_ATTEMPT $GREETING $(basename "$JINN_JOB_DIR") $(basename "$PWD")"`)
	req.Env = map[string]string{"GREETING": "hi"}
	j := s.submit(req)
	s.wait(j.ID, 20*time.Second)
	want := fmt.Sprintf("%s local bash 1 hi %s %s\n", j.ID, j.ID, j.ID)
	if out := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stdout"); out != want {
		t.Errorf("environment: %q, want %q", out, want)
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// A kill reaches every process the job spawned, grandchildren included.
func TestKillRunningJobKillsGrandchildren(t *testing.T) {
	s := start(t)
	j := s.submit(bash(`sleep 300 & echo $! >> pids; (sleep 300 & echo $! >> pids; wait) & echo ready; wait`))
	s.waitStatus(j.ID, job.Running, 20*time.Second)
	var pids []int
	waitFor(t, 20*time.Second, func() bool {
		resp, err := http.Get(s.URL + "/api/v1/jobs/" + j.ID + "/output/pids")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		pids = pids[:0]
		for _, f := range strings.Fields(string(data)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
		return len(pids) == 2
	})
	for _, p := range pids {
		if err := syscall.Kill(p, 0); err != nil {
			t.Fatalf("grandchild %d not running before the kill: %v", p, err)
		}
	}
	var killed job.Job
	if code := s.do("DELETE", "/api/v1/jobs/"+j.ID, nil, &killed); code != http.StatusAccepted {
		t.Fatalf("kill: %d", code)
	}
	done := s.wait(j.ID, 20*time.Second)
	if done.Status != job.Killed || done.Message != "killed on request" {
		t.Fatalf("final: %+v", done)
	}
	for _, p := range pids {
		waitFor(t, 5*time.Second, func() bool { return syscall.Kill(p, 0) != nil })
	}
	// A finished job cannot be killed again.
	var e apiErr
	if code := s.do("DELETE", "/api/v1/jobs/"+j.ID, nil, &e); code != http.StatusConflict || !strings.Contains(e.Error.Message, "KILLED") {
		t.Fatalf("second kill: %d %+v", code, e)
	}
}

func TestTimeout(t *testing.T) {
	s := start(t)
	req := bash("sleep 60")
	req.Timeout = 1
	j := s.submit(req)
	done := s.wait(j.ID, 20*time.Second)
	if done.Status != job.TimedOut || done.Message != "timed out after 1s" {
		t.Fatalf("final: %+v", done)
	}
	if d := done.Finished.Sub(*done.Started); d < time.Second || d > 10*time.Second {
		t.Fatalf("ran %s", d)
	}
}

// A job killed while it waits in the queue never runs.
func TestKillQueuedJobNeverRuns(t *testing.T) {
	s := start(t, withAllowance(1000))
	dir := t.TempDir()
	big := bash("sleep 60")
	big.Memory = 1000
	hog := s.submit(big)
	s.waitStatus(hog.ID, job.Running, 20*time.Second)

	small := bash("touch " + filepath.Join(dir, "ran"))
	small.Memory = 10
	queued := s.submit(small)
	var killed job.Job
	if code := s.do("DELETE", "/api/v1/jobs/"+queued.ID, nil, &killed); code != http.StatusAccepted || killed.Status != job.Killed {
		t.Fatalf("kill queued: %d %+v", code, killed)
	}
	s.do("DELETE", "/api/v1/jobs/"+hog.ID, nil, nil)
	s.wait(hog.ID, 20*time.Second)
	// The queued job's message is delivered once the memory is free; the
	// worker must drop it. A job submitted after it runs once it is dropped.
	after := s.submit(bash("true"))
	s.wait(after.ID, 20*time.Second)
	final, _ := s.Store.Get(context.Background(), queued.ID)
	if final.Status != job.Killed || final.Attempt != 0 || final.Started != nil {
		t.Fatalf("killed queued job: %+v", final)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("the killed job ran")
	}
}

func TestManyConcurrentJobs(t *testing.T) {
	const n = 200
	s := start(t, withWorkers(2), withAllowance(100*64))
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := job.Request{Command: []string{"type:exec"}, Args: []string{"echo", strconv.Itoa(i)}, Memory: 64}
			var j job.Job
			if code := s.do("POST", "/api/v1/jobs", req, &j); code != http.StatusAccepted {
				errs <- fmt.Errorf("submit %d: %d", i, code)
				return
			}
			ids[i] = j.ID
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	workers := map[string]int{}
	for i, id := range ids {
		done := s.wait(id, 60*time.Second)
		if done.Status != job.Succeeded || done.Attempt != 1 {
			t.Fatalf("job %d: %+v", i, done)
		}
		workers[done.Worker]++
		if out := s.get(t, "/api/v1/jobs/"+id+"/output/stdout"); out != strconv.Itoa(i)+"\n" {
			t.Fatalf("job %d stdout %q", i, out)
		}
	}
	if len(workers) != 2 {
		t.Errorf("jobs ran on %v; want both workers used", workers)
	}
}

// The same id submitted twice runs once; with a different request it conflicts.
func TestIdempotentSubmit(t *testing.T) {
	s := start(t)
	count := filepath.Join(t.TempDir(), "count")
	req := bash("echo run >> " + count)
	req.ID = "nightly-etl-2026-12-02"
	first := s.submit(req)
	var second job.Job
	if code := s.do("POST", "/api/v1/jobs", req, &second); code != http.StatusOK || second.ID != first.ID {
		t.Fatalf("resubmit: %d %+v", code, second)
	}
	s.wait(first.ID, 20*time.Second)
	if code := s.do("POST", "/api/v1/jobs", req, &second); code != http.StatusOK || second.Status != job.Succeeded {
		t.Fatalf("resubmit after finish: %d %+v", code, second)
	}
	// A later job proves the queue moved on; the first never ran twice.
	s.wait(s.submit(bash("true")).ID, 20*time.Second)
	data, _ := os.ReadFile(count)
	if string(data) != "run\n" {
		t.Fatalf("ran %q", data)
	}
	other := req
	other.Args = []string{"echo different"}
	var e apiErr
	if code := s.do("POST", "/api/v1/jobs", other, &e); code != http.StatusConflict || e.Error.Field != "id" {
		t.Fatalf("different request, same id: %d %+v", code, e)
	}
}

// With the first criterion's cluster OUT_OF_SERVICE, the second one is used;
// once it is UP again the first wins.
func TestClusterFallback(t *testing.T) {
	s := start(t)
	prod := job.Cluster{Name: "prod", Tags: []string{"sched:sla"}, Status: job.ClusterOutOfService}
	if code := s.do("PUT", "/api/v1/clusters/prod", prod, nil); code != http.StatusCreated {
		t.Fatalf("put cluster: %d", code)
	}
	req := bash("echo $JINN_CLUSTER")
	req.Clusters = [][]string{{"sched:sla"}, {"sched:adhoc"}}
	j := s.submit(req)
	if j.Cluster != "local" {
		t.Fatalf("fallback: cluster %q", j.Cluster)
	}
	s.wait(j.ID, 20*time.Second)

	var patched job.Cluster
	if code := s.do("PATCH", "/api/v1/clusters/prod", `{"status":"UP"}`, &patched); code != http.StatusOK || patched.Status != job.ClusterUp {
		t.Fatalf("patch: %d %+v", code, patched)
	}
	j = s.submit(req)
	if j.Cluster != "prod" {
		t.Fatalf("first criterion: cluster %q", j.Cluster)
	}
	done := s.wait(j.ID, 20*time.Second) // the worker serves every cluster, new ones too
	if done.Status != job.Succeeded {
		t.Fatalf("on prod: %+v", done)
	}
	if out := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stdout"); out != "prod\n" {
		t.Fatalf("stdout %q", out)
	}
}

// Producers without HTTP publish onto jinn.submit; admission is the same.
func TestSubmitOverJetStream(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	req := &job.Request{ID: "direct-1", User: "etl", Command: []string{"type:exec"}, Args: []string{"echo", "direct"}}
	if err := s.Broker.PublishSubmit(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := s.Broker.PublishSubmit(ctx, req); err != nil { // a duplicate publish
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { _, err := s.Store.Get(ctx, "direct-1"); return err == nil })
	done := s.wait("direct-1", 20*time.Second)
	if done.Status != job.Succeeded || done.User != "etl" || done.Attempt != 1 {
		t.Fatalf("final: %+v", done)
	}
	// A request that cannot run is recorded INVALID with the reason.
	bad := &job.Request{ID: "direct-2", Command: []string{"type:nope"}}
	if err := s.Broker.PublishSubmit(ctx, bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { j, err := s.Store.Get(ctx, "direct-2"); return err == nil && j.Status == job.Invalid })
	j, _ := s.Store.Get(ctx, "direct-2")
	if !strings.Contains(j.Message, "type:nope") {
		t.Fatalf("invalid message: %q", j.Message)
	}
}

func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
