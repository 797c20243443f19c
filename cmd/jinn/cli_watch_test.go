package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

func TestStatusWatchEndsWhenTheJobDoes(t *testing.T) {
	cleanEnv(t)
	f := newFake(t, map[string][]reply{
		"GET /jobs/j1": {
			ok(`{"id":"j1","status":"QUEUED","attempt":0}`),
			ok(`{"id":"j1","status":"RUNNING","attempt":1}`),
			ok(`{"id":"j1","status":"SUCCEEDED","attempt":1,"exitCode":0}`),
		},
		"GET /events?job=j1": {apiError(http.StatusNotFound, "not_found", "an older intake")},
	})
	out, _, err := run(t, "", "status", "--watch", "--interval", "5ms", "j1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.bodies("GET /jobs/j1")); n != 3 {
		t.Errorf("%d reads, want 3: %v", n, f.keys())
	}
	for _, st := range []string{"QUEUED", "RUNNING", "SUCCEEDED"} {
		if !strings.Contains(out, "status:    "+st) && !strings.Contains(out, st) {
			t.Errorf("no frame with %s:\n%s", st, out)
		}
	}
	if strings.Count(out, "id:") != 3 || strings.Contains(out, "\x1b[") {
		t.Errorf("frames (no terminal, so no escape codes):\n%q", out)
	}
	// --json prints one record a frame.
	newFake(t, map[string][]reply{"GET /jobs/j1": {ok(`{"id":"j1","status":"FAILED","attempt":1}`)},
		"GET /events?job=j1": {apiError(http.StatusNotFound, "not_found", "an older intake")}})
	out, _, err = run(t, "", "status", "--watch", "--json", "j1")
	var j job.Job
	if err != nil || json.Unmarshal([]byte(out), &j) != nil || j.Status != job.Failed {
		t.Errorf("--json --watch: %q %v", out, err)
	}
}

// workers --watch re-draws until Ctrl-C (its context ends), which is no error.
func TestWorkersWatchUntilInterrupted(t *testing.T) {
	cleanEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reads.Add(1) == 3 {
			cancel() // the user presses Ctrl-C during the third frame
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"workers":[{"id":"w1","pool":"default","allowance":1024,"reserved":256,"jobs":["j1"],"state":"ACTIVE"}]}`))
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	c := &console{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, now: func() time.Time { return testNow }, loc: time.UTC}
	if err := c.verbs()["workers"].run(ctx, []string{"--watch", "--interval", "5ms", "--server", srv.URL}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "w1  default"); n < 2 {
		t.Errorf("%d frames:\n%s", n, out.String())
	}
	if _, _, err := run(t, "", "workers", "--watch", "--interval", "0s"); err == nil {
		t.Error("--interval 0s was taken")
	}
}

func TestKillAndDrainJSON(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"DELETE /jobs/j1":        {{http.StatusAccepted, `{"id":"j1","status":"KILLED","attempt":0}`}},
		"POST /workers/w1/drain": {{http.StatusAccepted, `{"id":"w1","state":"DRAINING","jobs":[]}`}},
		"DELETE /jobs/j2":        {apiError(http.StatusForbidden, "forbidden", "job j2 belongs to another user")},
		"POST /workers/w2/drain": {apiError(http.StatusForbidden, "forbidden", "needs the operator role")},
	})
	out, _, err := run(t, "", "kill", "--json", "j1")
	var jobs []job.Job
	if err != nil || json.Unmarshal([]byte(out), &jobs) != nil || len(jobs) != 1 || jobs[0].Status != job.Killed {
		t.Errorf("kill --json: %q %v", out, err)
	}
	out, _, err = run(t, "", "kill", "--json", "j2")
	if err == nil || !strings.Contains(err.Error(), "403 forbidden") || strings.TrimSpace(out) != "[]" {
		t.Errorf("kill --json of another's job: %q %v", out, err)
	}
	var buf bytes.Buffer
	c := &console{stdin: strings.NewReader(""), stdout: &buf, stderr: &buf, now: time.Now, loc: time.UTC}
	if err := c.drain(context.Background(), []string{"--json", "w1"}); err != nil {
		t.Fatal(err)
	}
	var ws []job.Worker
	if json.Unmarshal(buf.Bytes(), &ws) != nil || len(ws) != 1 || ws[0].State != job.WorkerDraining {
		t.Errorf("drain --json: %q", buf.String())
	}
}

func TestCompletion(t *testing.T) {
	table := completionTable()
	byName := map[string]verbInfo{}
	for _, v := range table {
		byName[v.name] = v
	}
	for _, name := range []string{"submit", "status", "workers", "up", "intake", "completion", "token"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("no verb %s in the completion table", name)
		}
	}
	has := func(verb, flag string) bool {
		for _, f := range byName[verb].flags {
			if f.name == flag {
				return true
			}
		}
		return false
	}
	for _, c := range [][2]string{{"status", "watch"}, {"workers", "watch"}, {"kill", "json"}, {"submit", "token"}, {"intake", "tokens"}, {"worker", "nats-creds"}, {"up", "tls-cert"}} {
		if !has(c[0], c[1]) {
			t.Errorf("verb %s: no flag --%s in %v", c[0], c[1], byName[c[0]].flags)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		s, err := completionScript(shell, table)
		if err != nil || !strings.Contains(s, "status") || !strings.Contains(s, "watch") {
			t.Errorf("%s: %v\n%s", shell, err, s)
		}
	}
	if _, err := completionScript("tcsh", table); err == nil {
		t.Error("tcsh was taken")
	}
}

// With a token, submit leaves the user to the intake (which takes it from
// the token) instead of sending this machine's $USER.
func TestSubmitWithTokenSendsNoUser(t *testing.T) {
	cleanEnv(t)
	t.Setenv("USER", "localname")
	f := newFake(t, map[string][]reply{"POST /jobs": {{http.StatusAccepted, `{"id":"j1","status":"QUEUED","attempt":0}`}}})
	if _, _, err := run(t, "", "submit", "--token", "t0123456789abcdef", "--", "true"); err != nil {
		t.Fatal(err)
	}
	if b := f.bodies("POST /jobs"); len(b) != 1 || strings.Contains(b[0], "localname") {
		t.Errorf("bodies %q", b)
	}
	if _, _, err := run(t, "", "submit", "--token", "t0123456789abcdef", "--user", "svc", "--", "true"); err != nil {
		t.Fatal(err)
	}
	if b := f.bodies("POST /jobs"); len(b) != 2 || !strings.Contains(b[1], `"svc"`) {
		t.Errorf("an explicit --user is sent: %q", b)
	}
	if _, _, err := run(t, "", "submit", "--", "true"); err != nil { // no token: $USER
		t.Fatal(err)
	}
	if b := f.bodies("POST /jobs"); len(b) != 3 || !strings.Contains(b[2], `"localname"`) {
		t.Errorf("without a token $USER is sent: %q", b)
	}
}

// status --watch re-draws when the job's status event arrives, not only on
// its interval.
func TestStatusWatchWakesOnEvents(t *testing.T) {
	cleanEnv(t)
	var reads atomic.Int32
	streaming := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/jobs/j1":
			st := "RUNNING"
			if reads.Add(1) > 1 {
				st = "SUCCEEDED"
			}
			_, _ = w.Write([]byte(`{"id":"j1","status":"` + st + `","attempt":1}`))
		case "/api/v1/events":
			if r.URL.Query().Get("job") != "j1" || r.Header.Get("Authorization") != "Bearer tok-0123456789abcdef" {
				t.Errorf("events request %s %q", r.URL, r.Header.Get("Authorization"))
			}
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("event: status\ndata: {\"id\":\"j1\",\"status\":\"SUCCEEDED\"}\n\n"))
			w.(http.Flusher).Flush()
			close(streaming)
			<-r.Context().Done()
		default:
			t.Errorf("unexpected %s", r.URL)
		}
	}))
	defer srv.Close()
	out, _, err := run(t, "", "status", "--watch", "--interval", "1h", "--server", srv.URL, "--token", "tok-0123456789abcdef", "j1")
	if err != nil {
		t.Fatal(err)
	}
	<-streaming
	if !strings.Contains(out, "RUNNING") || !strings.Contains(out, "SUCCEEDED") {
		t.Errorf("frames:\n%s", out)
	}
}
