package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/job"
)

// reply is one canned answer of the fake API.
type reply struct {
	status int
	body   string
}

func ok(body string) reply { return reply{http.StatusOK, body} }

func apiError(status int, code, msg string) reply {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	return reply{status, string(b)}
}

// request is one request the fake API received.
type request struct {
	key  string // "METHOD /path?query", the path under /api/v1, the query sorted
	body string
}

// fakeAPI answers requests by "METHOD /path?query": each key has a list of
// replies given in turn, the last one repeating. Any other request fails the
// test.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	replies map[string][]reply
	got     []request
}

func newFake(t *testing.T, replies map[string][]reply) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, replies: replies}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("JINN_SERVER", srv.URL)
	return f
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + strings.TrimPrefix(r.URL.EscapedPath(), "/api/v1")
	if q := r.URL.Query().Encode(); q != "" {
		key += "?" + q
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.got = append(f.got, request{key, string(body)})
	rs, found := f.replies[key]
	if found && len(rs) > 1 {
		f.replies[key] = rs[1:]
	}
	f.mu.Unlock()
	if !found {
		f.t.Errorf("unexpected request %s %s", key, body)
		rs = []reply{apiError(http.StatusNotFound, "not_found", "not in the fake")}
	}
	if rs[0].status == 0 {
		rs[0].status = http.StatusOK
	}
	w.WriteHeader(rs[0].status)
	_, _ = io.WriteString(w, rs[0].body)
}

// keys returns the keys of the requests received, in order.
func (f *fakeAPI) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var k []string
	for _, r := range f.got {
		k = append(k, r.key)
	}
	return k
}

// bodies returns the bodies of the requests with key, in order.
func (f *fakeAPI) bodies(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b []string
	for _, r := range f.got {
		if r.key == key {
			b = append(b, r.body)
		}
	}
	return b
}

func assertJSON(t *testing.T, what, got, want string) {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(got), &x); err != nil {
		t.Errorf("%s: %q is not JSON: %v", what, got, err)
		return
	}
	if err := json.Unmarshal([]byte(want), &y); err != nil {
		t.Fatalf("%s: bad want %q: %v", what, want, err)
	}
	if !reflect.DeepEqual(x, y) {
		t.Errorf("%s =\n%s\nwant\n%s", what, got, want)
	}
}

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// run runs one verb on a console of buffers, with a fixed clock in UTC.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &console{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, now: func() time.Time { return testNow }, loc: time.UTC}
	v, found := c.verbs()[args[0]]
	if !found {
		t.Fatalf("no verb %s", args[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = v.run(ctx, args[1:])
	return out.String(), errOut.String(), err
}

// cleanEnv keeps the tests from the environment of whoever runs them.
func cleanEnv(t *testing.T) {
	for _, k := range []string{"JINN_SERVER", "JINN_TOKEN", "JINN_USER", "USER"} {
		t.Setenv(k, "")
	}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exitError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T) is not an *exitError", err, err)
	}
	return ee.code
}

func TestSubmitPrintsID(t *testing.T) {
	cleanEnv(t)
	t.Setenv("JINN_USER", "ann")
	t.Setenv("USER", "root")
	f := newFake(t, map[string][]reply{
		"POST /jobs": {{http.StatusAccepted, `{"id":"j1","status":"ACCEPTED","attempt":0}`}},
	})
	out, errOut, err := run(t, "", "submit", "--name", "etl", "--cluster", "sched:bonus, os:linux", "--cluster=type:local",
		"--memory", "256", "--timeout", "10m", "--retries", "0", "--env", "A=1", "--env", "B=x=y", "--tag", "t1", "--tag", "t2",
		"--id", "j1", "--", "echo", "-n", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if out != "j1\n" || errOut != "" {
		t.Errorf("stdout %q, stderr %q", out, errOut)
	}
	assertJSON(t, "request", f.bodies("POST /jobs")[0], `{
		"id":"j1","name":"etl","user":"ann","tags":["t1","t2"],"command":["type:exec"],
		"clusters":[["sched:bonus","os:linux"],["type:local"]],"args":["echo","-n","hi"],
		"env":{"A":"1","B":"x=y"},"memory":256,"timeout":600,"retries":0}`)
}

func TestSubmitDefaults(t *testing.T) {
	cleanEnv(t)
	t.Setenv("USER", "bob")
	t.Setenv("JINN_TOKEN", "s3cret")
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		// With a token the intake takes the user from it: $USER is not sent.
		assertJSON(t, "request", string(b), `{"command":["type:exec"],"args":["true"]}`)
		_, _ = io.WriteString(w, `{"id":"j9","status":"ACCEPTED","attempt":0}`)
	}))
	defer srv.Close()
	t.Setenv("JINN_SERVER", srv.URL)
	out, _, err := run(t, "", "submit", "true")
	if err != nil || out != "j9\n" {
		t.Fatalf("out %q, err %v", out, err)
	}
	if auth != "Bearer s3cret" {
		t.Errorf("Authorization = %q", auth)
	}
	// --token wins over JINN_TOKEN; --command and --user replace the defaults.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		assertJSON(t, "request", string(b), `{"user":"cy","command":["type:spark","version:3"],"args":["q.sql"]}`)
		_, _ = io.WriteString(w, `{"id":"j10","status":"ACCEPTED","attempt":0}`)
	})
	if _, _, err := run(t, "", "submit", "--token", "other", "--user", "cy", "--command", "type:spark,version:3", "q.sql"); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer other" {
		t.Errorf("Authorization = %q", auth)
	}
}

func TestSubmitJSON(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"POST /jobs": {{http.StatusAccepted, `{"id":"j1","user":"ann","status":"QUEUED","cluster":"local","attempt":0}`}},
	})
	out, _, err := run(t, "", "submit", "--json", "true")
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "stdout", out, `{"id":"j1","user":"ann","status":"QUEUED","cluster":"local","attempt":0}`)
}

func TestSubmitBadRequest(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"POST /jobs": {{http.StatusBadRequest, `{"error":{"code":"bad_request","message":"must be between 0 and 1048576 MiB, got -1","field":"memory"}}`}},
	})
	_, _, err := run(t, "", "submit", "--memory", "-1", "true")
	if got, want := err.Error(), "submit job: 400 bad_request: must be between 0 and 1048576 MiB, got -1 (field memory)"; got != want {
		t.Errorf("err = %q, want %q", got, want)
	}
}

// waitAPI fakes a job j1 that printed out and err and ended as final.
func waitAPI(t *testing.T, final string, logs reply) *fakeAPI {
	return newFake(t, map[string][]reply{
		"POST /jobs": {{http.StatusAccepted, `{"id":"j1","status":"ACCEPTED","attempt":0}`}},
		"GET /jobs/j1/logs?follow=true&stream=stdout": {logs},
		"GET /jobs/j1/logs?follow=true&stream=stderr": {ok("warning: x\n")},
		"GET /jobs/j1": {ok(`{"id":"j1","status":"RUNNING","attempt":1}`), ok(final)},
	})
}

func TestSubmitWaitPassesOnExitCode(t *testing.T) {
	cleanEnv(t)
	f := waitAPI(t, `{"id":"j1","status":"FAILED","attempt":1,"exitCode":3,"message":"exit status 3","started":"2030-01-02T03:04:00Z"}`, ok("hello\nworld\n"))
	out, errOut, err := run(t, "", "submit", "--wait", "--", "sh", "-c", "echo hello; echo world; exit 3")
	if code := exitCode(t, err); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if out != "hello\nworld\n" {
		t.Errorf("stdout = %q", out)
	}
	if errOut != "warning: x\n" {
		t.Errorf("stderr = %q", errOut)
	}
	keys := f.keys()
	slices.Sort(keys[1:3]) // the two log streams are read at once
	want := []string{"POST /jobs", "GET /jobs/j1/logs?follow=true&stream=stderr", "GET /jobs/j1/logs?follow=true&stream=stdout", "GET /jobs/j1", "GET /jobs/j1"}
	if !slices.Equal(keys, want) {
		t.Errorf("requests =\n%q\nwant\n%q", keys, want)
	}
}

func TestSubmitWaitSucceeded(t *testing.T) {
	cleanEnv(t)
	waitAPI(t, `{"id":"j1","status":"SUCCEEDED","attempt":1,"exitCode":0}`, ok("done\n"))
	out, _, err := run(t, "", "submit", "--wait", "true")
	if err != nil || out != "done\n" {
		t.Errorf("out %q, err %v", out, err)
	}
}

func TestSubmitWaitWithoutExitCode(t *testing.T) {
	for _, tc := range []struct {
		final, logs string
		code        int
		stderr      string
	}{
		{`{"id":"j1","status":"KILLED","message":"killed on request","attempt":1,"started":"2030-01-02T03:04:00Z"}`, "", 1,
			"warning: x\njob j1 KILLED: killed on request\n"},
		{`{"id":"j1","status":"TIMED_OUT","message":"ran past its timeout of 60s","attempt":1,"started":"2030-01-02T03:04:00Z"}`, "", 124,
			"warning: x\njob j1 TIMED_OUT: ran past its timeout of 60s\n"},
		{`{"id":"j1","status":"LOST","attempt":3,"started":"2030-01-02T03:04:00Z"}`, "", 1,
			"warning: x\njob j1 LOST\n"},
		// A job that never ran may have no logs at all: no word about missing output.
		{`{"id":"j1","status":"INVALID","message":"no UP cluster matches [type:gpu]","attempt":0}`, "404", 1,
			"warning: x\njob j1 INVALID: no UP cluster matches [type:gpu]\n"},
	} {
		var head struct{ Status string }
		_ = json.Unmarshal([]byte(tc.final), &head)
		t.Run(head.Status, func(t *testing.T) {
			cleanEnv(t)
			logs := ok("")
			if tc.logs == "404" {
				logs = apiError(http.StatusNotFound, "not_found", "no output")
			}
			waitAPI(t, tc.final, logs)
			_, errOut, err := run(t, "", "submit", "--wait", "true")
			if code := exitCode(t, err); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if errOut != tc.stderr {
				t.Errorf("stderr = %q, want %q", errOut, tc.stderr)
			}
		})
	}
}

func TestSubmitWaitWarnsOfBrokenStream(t *testing.T) {
	cleanEnv(t)
	waitAPI(t, `{"id":"j1","status":"SUCCEEDED","attempt":1,"exitCode":0,"started":"2030-01-02T03:04:00Z"}`,
		apiError(http.StatusServiceUnavailable, "unavailable", "worker w1 does not answer"))
	_, errOut, err := run(t, "", "submit", "--wait", "true")
	if err != nil {
		t.Fatal(err)
	}
	want := "warning: x\njinn: some output may be missing: stdout of job j1: 503 unavailable: worker w1 does not answer\n"
	if errOut != want {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
}

func TestSubmitWaitJSON(t *testing.T) {
	cleanEnv(t)
	f := newFake(t, map[string][]reply{
		"POST /jobs":   {{http.StatusAccepted, `{"id":"j1","status":"ACCEPTED","attempt":0}`}},
		"GET /jobs/j1": {ok(`{"id":"j1","status":"FAILED","attempt":1,"exitCode":2}`)},
	})
	out, _, err := run(t, "", "submit", "--wait", "--json", "false")
	if code := exitCode(t, err); code != 2 {
		t.Errorf("exit code %d", code)
	}
	assertJSON(t, "stdout", out, `{"id":"j1","status":"FAILED","attempt":1,"exitCode":2}`)
	if keys := f.keys(); !slices.Equal(keys, []string{"POST /jobs", "GET /jobs/j1"}) {
		t.Errorf("requests = %q (no logs with --json)", keys)
	}
}

func TestSubmitNATS(t *testing.T) {
	cleanEnv(t)
	log := hclog.NewNullLogger()
	ns, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	b, err := broker.Connect(context.Background(), broker.Config{URL: ns.ClientURL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Without --wait no HTTP at all.
	newFake(t, nil)
	out, _, err := run(t, "", "submit", "--nats", ns.ClientURL(), "--id", "n1", "--user", "ann", "true")
	if err != nil || out != "n1\n" {
		t.Fatalf("out %q, err %v", out, err)
	}
	st, err := b.JS.Stream(context.Background(), broker.SubmitStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "published", string(msg.Data), `{"id":"n1","user":"ann","command":["type:exec"],"args":["true"]}`)

	// With --wait, HTTP tells when the scheduler has recorded the job, then
	// how it ended.
	f := newFake(t, map[string][]reply{
		"GET /jobs/n2": {
			apiError(http.StatusNotFound, "not_found", "no job n2"),
			apiError(http.StatusNotFound, "not_found", "no job n2"),
			ok(`{"id":"n2","status":"QUEUED","attempt":0}`),
			ok(`{"id":"n2","status":"FAILED","attempt":1,"exitCode":7,"started":"2030-01-02T03:04:00Z"}`),
		},
		"GET /jobs/n2/logs?follow=true&stream=stdout": {ok("out\n")},
		"GET /jobs/n2/logs?follow=true&stream=stderr": {ok("")},
	})
	out, _, err = run(t, "", "submit", "--nats", ns.ClientURL(), "--id", "n2", "--wait", "exit-7")
	if code := exitCode(t, err); code != 7 {
		t.Errorf("exit code %d", code)
	}
	if out != "out\n" {
		t.Errorf("stdout = %q", out)
	}
	if n := len(f.bodies("GET /jobs/n2")); n != 4 {
		t.Errorf("%d GETs of the job, want 4", n)
	}

	// A request that cannot be valid is refused before it is published.
	_, _, err = run(t, "", "submit", "--nats", ns.ClientURL(), "--env", "JINN_X=1", "true")
	var fe *job.FieldError
	if !errors.As(err, &fe) || fe.Field != "env.JINN_X" {
		t.Errorf("err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"GET /jobs/j1": {ok(`{"id":"j1","name":"etl","user":"ann","status":"FAILED","message":"exit status 3",
			"cluster":"local","command":"sh","worker":"w1","attempt":2,"memory":512,"peak":300,"exitCode":3,
			"created":"2030-01-02T03:00:00Z","started":"2030-01-02T03:00:01.5Z","finished":"2030-01-02T03:02:03.75Z"}`)},
		"GET /jobs/j2": {ok(`{"id":"j2","status":"RUNNING","attempt":1,"killRequested":true,"created":"2030-01-02T03:00:00Z","started":"2030-01-02T03:04:00Z"}`)},
	})
	out, _, err := run(t, "", "status", "j1")
	if err != nil {
		t.Fatal(err)
	}
	want := `id:        j1
name:      etl
user:      ann
status:    FAILED
message:   exit status 3
cluster:   local
command:   sh
worker:    w1
attempt:   2
exit code: 3
memory:    512 MiB (peak 300 MiB)
created:   2030-01-02 03:00:00 UTC
started:   2030-01-02 03:00:01 UTC
finished:  2030-01-02 03:02:03 UTC
duration:  2m2.25s
`
	if out != want {
		t.Errorf("status =\n%s\nwant\n%s", out, want)
	}

	out, _, err = run(t, "", "status", "j2")
	if err != nil {
		t.Fatal(err)
	}
	want = `id:       j2
status:   RUNNING (kill requested)
attempt:  1
created:  2030-01-02 03:00:00 UTC
started:  2030-01-02 03:04:00 UTC
duration: 5s so far
`
	if out != want {
		t.Errorf("status =\n%s\nwant\n%s", out, want)
	}

	// Flags may follow the id.
	out, _, err = run(t, "", "status", "j2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "json", out, `{"id":"j2","status":"RUNNING","attempt":1,"killRequested":true,"created":"2030-01-02T03:00:00Z","started":"2030-01-02T03:04:00Z"}`)

	if _, _, err := run(t, "", "status"); err == nil || !strings.Contains(err.Error(), "want one job ID") {
		t.Errorf("no id: %v", err)
	}
}

func TestStatusNotFound(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{"GET /jobs/zz": {apiError(404, "not_found", "no job zz")}})
	_, _, err := run(t, "", "status", "zz")
	if err == nil || err.Error() != "get job zz: 404 not_found: no job zz" {
		t.Errorf("err = %v", err)
	}
}

func TestLogs(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"GET /jobs/j1/logs?follow=true&stream=stderr": {ok("e1\ne2\n")},
		"GET /jobs/j1/logs?stream=stdout":             {ok("o1\n")},
	})
	out, _, err := run(t, "", "logs", "-f", "--stderr", "j1")
	if err != nil || out != "e1\ne2\n" {
		t.Errorf("out %q, err %v", out, err)
	}
	out, _, err = run(t, "", "logs", "j1")
	if err != nil || out != "o1\n" {
		t.Errorf("out %q, err %v", out, err)
	}
}

func TestKill(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"DELETE /jobs/j1": {{http.StatusAccepted, `{"id":"j1","status":"KILLED","attempt":0}`}},
		"DELETE /jobs/j2": {{http.StatusAccepted, `{"id":"j2","status":"RUNNING","attempt":1,"killRequested":true}`}},
		"DELETE /jobs/j3": {apiError(http.StatusConflict, "conflict", "job j3 has already finished: SUCCEEDED")},
	})
	out, _, err := run(t, "", "kill", "j1", "j3", "j2")
	if want := "killed j1\nkill requested for j2 (RUNNING)\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	if err == nil || err.Error() != "kill job j3: 409 conflict: job j3 has already finished: SUCCEEDED" {
		t.Errorf("err = %v", err)
	}
}

func TestJobs(t *testing.T) {
	cleanEnv(t)
	f := newFake(t, map[string][]reply{
		"GET /jobs?limit=2&status=RUNNING&user=ann": {ok(`{"jobs":[
			{"id":"j3","name":"etl","user":"ann","status":"RUNNING","cluster":"local","command":"sh","attempt":1,"created":"2030-01-02T03:03:05Z"},
			{"id":"j2","user":"ann","status":"RUNNING","attempt":2,"created":"2030-01-01T03:04:00Z"}],"next":"c 1"}`)},
		"GET /jobs?cursor=c+1&limit=2&status=RUNNING&user=ann": {ok(`{"jobs":[
			{"id":"j1","user":"ann","status":"RUNNING","attempt":1,"exitCode":0,"created":"2029-12-01T00:00:00Z"}],"next":""}`)},
	})
	out, errOut, err := run(t, "", "jobs", "--user", "ann", "--status", "running", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	want := `ID  NAME  USER  STATUS   CLUSTER  COMMAND  ATTEMPT  EXIT  CREATED              AGE
j3  etl   ann   RUNNING  local    sh       1        -     2030-01-02 03:03:05  1m
j2  -     ann   RUNNING  -        -        2        -     2030-01-01 03:04:00  24h
`
	if out != want {
		t.Errorf("table =\n%s\nwant\n%s", out, want)
	}
	if errOut != "more jobs: add --cursor 'c 1', or use --all\n" {
		t.Errorf("stderr = %q", errOut)
	}

	out, errOut, err = run(t, "", "jobs", "--user", "ann", "--status", "RUNNING", "--limit", "2", "--all")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[3], "j1 ") || !strings.HasSuffix(lines[3], " 0     2029-12-01 00:00:00  32d") {
		t.Errorf("--all table =\n%s", out)
	}
	if errOut != "" {
		t.Errorf("stderr = %q", errOut)
	}
	if n := len(f.keys()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}

	if _, _, err := run(t, "", "jobs", "--status", "DONE"); err == nil || !strings.Contains(err.Error(), `unknown status "DONE"`) {
		t.Errorf("bad status: %v", err)
	}
}

func TestJobsJSON(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{"GET /jobs?cluster=local": {ok(`{"jobs":[],"next":""}`)}})
	out, _, err := run(t, "", "jobs", "--cluster", "local", "--json")
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "json", out, `{"jobs":[],"next":""}`)
}

const twoDocs = `# the local cluster
kind: cluster
name: local
description: this machine
tags: [type:local, os:linux]
env:
  TMPDIR: /var/tmp
---
kind: command
name: sh
tags:
  - type:sh
executable: [/bin/sh, -c]
memory: 128
clusterCriteria:
  - [type:local]
`

func TestApply(t *testing.T) {
	cleanEnv(t)
	f := newFake(t, map[string][]reply{
		"PUT /clusters/local": {ok(`{"name":"local","status":"UP"}`)},
		"PUT /commands/sh":    {ok(`{"name":"sh","status":"ACTIVE"}`)},
	})
	file := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(file, []byte(twoDocs), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "", "apply", "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	if want := "cluster/local applied\ncommand/sh applied\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	if keys := f.keys(); !slices.Equal(keys, []string{"PUT /clusters/local", "PUT /commands/sh"}) {
		t.Errorf("requests = %q", keys)
	}
	assertJSON(t, "cluster", f.bodies("PUT /clusters/local")[0],
		`{"name":"local","description":"this machine","tags":["type:local","os:linux"],"status":"UP","env":{"TMPDIR":"/var/tmp"}}`)
	assertJSON(t, "command", f.bodies("PUT /commands/sh")[0],
		`{"name":"sh","tags":["type:sh"],"status":"ACTIVE","executable":["/bin/sh","-c"],"memory":128,"clusterCriteria":[["type:local"]]}`)

	// From stdin, with empty documents around, which do not count.
	out, _, err = run(t, "---\n# nothing here\n---\n"+twoDocs+"---\n", "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if want := "cluster/local applied\ncommand/sh applied\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestApplyRejectsBadDocuments(t *testing.T) {
	cleanEnv(t)
	newFake(t, nil) // nothing may be applied when any document is bad
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown kind", twoDocs + "---\nkind: pool\nname: p\n",
			`stdin: document 3 (line 18): unknown kind "pool": want cluster, command or application`},
		{"after an empty document", "kind: cluster\nname: a\n---\n# empty\n---\nkind: job\nname: b\n",
			`stdin: document 2 (line 6): unknown kind "job": want cluster, command or application`},
		{"no kind", "kind: cluster\nname: a\n---\nname: b\n",
			`stdin: document 2 (line 4): no kind: say "kind: cluster", "kind: command" or "kind: application"`},
		{"bad application file", "kind: application\nname: spark\nfiles: [http://x/spark.tgz]\n",
			`stdin: document 1 (line 1): application spark: files[0]: "http://x/spark.tgz" is not a file URI`},
		{"unknown field", "kind: cluster\nname: a\ntag: [x]\n", `stdin: document 1 (line 1): `},
		{"invalid entity", "kind: command\nname: Bad Name\n", `stdin: document 1 (line 1): command Bad Name: name: "Bad Name" is not a valid name`},
		{"not a mapping", "kind: cluster\nname: a\n---\n- 1\n", "stdin: document 2 (line 4): "},
		{"bad yaml", "kind: cluster\nname: a\n---\nkind: cluster\nname: [\n", "stdin: document 2: [5:7]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.yaml, "apply", "-f", "-")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant prefix %s", err, tc.want)
			}
		})
	}
	if _, _, err := run(t, "# nothing\n", "apply", "-f", "-"); err == nil || err.Error() != "apply: no clusters, commands or applications in -" {
		t.Errorf("empty file: %v", err)
	}
	if _, _, err := run(t, "", "apply"); err == nil || err.Error() != "apply: -f FILE is required" {
		t.Errorf("no -f: %v", err)
	}
}

func TestClustersAndCommands(t *testing.T) {
	cleanEnv(t)
	f := newFake(t, map[string][]reply{
		"GET /clusters": {ok(`{"clusters":[{"name":"local","status":"UP","tags":["type:local","os:linux"],"description":"this machine"},
			{"name":"spark","status":"OUT_OF_SERVICE"}]}`)},
		"PATCH /clusters/spark": {ok(`{"name":"spark","status":"UP"}`)},
		"DELETE /clusters/old":  {{http.StatusNoContent, ""}},
		"GET /commands":         {ok(`{"commands":[{"name":"sh","status":"ACTIVE","tags":["type:sh"],"executable":["/bin/sh","-c"],"memory":128}]}`)},
		"PATCH /commands/sh":    {apiError(http.StatusBadRequest, "bad_request", `"GONE" is not one of ACTIVE, DEPRECATED, INACTIVE`)},
	})
	out, _, err := run(t, "", "clusters")
	if err != nil {
		t.Fatal(err)
	}
	want := `NAME   STATUS          TAGS                 DESCRIPTION
local  UP              type:local,os:linux  this machine
spark  OUT_OF_SERVICE  -                    -
`
	if out != want {
		t.Errorf("clusters =\n%s\nwant\n%s", out, want)
	}
	out, _, err = run(t, "", "clusters", "set-status", "spark", "up")
	if err != nil || out != "cluster/spark UP\n" {
		t.Errorf("set-status: %q, %v", out, err)
	}
	assertJSON(t, "patch", f.bodies("PATCH /clusters/spark")[0], `{"status":"UP"}`)
	out, _, err = run(t, "", "clusters", "delete", "old")
	if err != nil || out != "cluster/old deleted\n" {
		t.Errorf("delete: %q, %v", out, err)
	}
	if _, _, err := run(t, "", "clusters", "set-status", "spark"); err == nil {
		t.Error("set-status without a status succeeded")
	}

	out, _, err = run(t, "", "commands", "--json")
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "commands", out, `[{"name":"sh","status":"ACTIVE","tags":["type:sh"],"executable":["/bin/sh","-c"],"memory":128}]`)
	out, _, err = run(t, "", "commands")
	if err != nil {
		t.Fatal(err)
	}
	want = `NAME  STATUS  TAGS     MEMORY   EXECUTABLE
sh    ACTIVE  type:sh  128 MiB  /bin/sh -c
`
	if out != want {
		t.Errorf("commands =\n%s\nwant\n%s", out, want)
	}
	_, _, err = run(t, "", "commands", "set-status", "sh", "gone")
	if err == nil || err.Error() != `patch command sh: 400 bad_request: "GONE" is not one of ACTIVE, DEPRECATED, INACTIVE` {
		t.Errorf("err = %v", err)
	}
}

func TestWorkers(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"GET /workers": {ok(`{"workers":[
			{"id":"w1","pool":"default","host":"h1","clusters":["local","spark"],"allowance":4096,"reserved":768,"jobs":["j1","j2"],"state":"ACTIVE","started":"2030-01-02T00:00:00Z","heartbeat":"2030-01-02T03:04:02Z"},
			{"id":"w2","pool":"default","host":"h2","clusters":["local"],"allowance":2048,"reserved":0,"jobs":[],"state":"DRAINING","started":"2030-01-02T00:00:00Z","heartbeat":"2030-01-02T03:03:05Z"}]}`)},
	})
	out, _, err := run(t, "", "workers")
	if err != nil {
		t.Fatal(err)
	}
	want := `ID  POOL     HOST  STATE     JOBS  RESERVED/ALLOWANCE MiB  CLUSTERS     HEARTBEAT-AGE
w1  default  h1    ACTIVE    2     768/4096                local,spark  3s
w2  default  h2    DRAINING  0     0/2048                  local        1m
`
	if out != want {
		t.Errorf("workers =\n%s\nwant\n%s", out, want)
	}
}

func TestUnreachableServer(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{"GET /workers": {ok(`{"workers":[]}`)}})
	live := os.Getenv("JINN_SERVER")
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // nothing listens there any more
	t.Setenv("JINN_SERVER", dead.URL)
	_, _, err := run(t, "", "workers")
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "JINN_SERVER") {
		t.Errorf("err = %v", err)
	}
	// --server wins over JINN_SERVER.
	if _, _, err := run(t, "", "workers", "--server", live); err != nil {
		t.Errorf("--server: %v", err)
	}
}

func TestVerbsHaveSummaries(t *testing.T) {
	// Every verb is listed by `jinn help` with a summary and runs something;
	// the verbs the README's tour uses are all there.
	all := allVerbs(clientVerbs)
	for name, v := range all {
		if v.summary == "" || v.run == nil {
			t.Errorf("verb %s: summary %q, run %v", name, v.summary, v.run != nil)
		}
	}
	for _, name := range []string{"up", "intake", "scheduler", "worker", "nats", "submit", "status", "logs", "kill", "jobs",
		"apply", "clusters", "commands", "workers", "pools", "drain", "loadtest", "bench", "completion", "version"} {
		if _, ok := all[name]; !ok {
			t.Errorf("no verb %s", name)
		}
	}
}

func TestExitErrorPassesThroughHints(t *testing.T) {
	err := reachHint(&exitError{code: 3})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 || err.Error() != "exit status 3" {
		t.Errorf("err = %v", err)
	}
}
