package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// Every error the API gives has a status, a code, a message and, where one
// field is at fault, its name.
func TestAPIErrors(t *testing.T) {
	s := start(t)
	done := s.wait(s.submit(bash("true")).ID, 20*time.Second)
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code, field, msg   string
	}{
		{"malformed JSON", "POST", "/api/v1/jobs", `{"command": [`, 400, "bad_request", "", "truncated"},
		{"syntax error", "POST", "/api/v1/jobs", `{"command": ]}`, 400, "bad_request", "", "malformed JSON"},
		{"empty body", "POST", "/api/v1/jobs", ``, 400, "bad_request", "", "empty"},
		{"unknown field", "POST", "/api/v1/jobs", `{"command":["type:exec"],"comand":["x"]}`, 400, "bad_request", "comand", "unknown field"},
		{"wrong type", "POST", "/api/v1/jobs", `{"command":"type:exec"}`, 400, "bad_request", "command", "must be"},
		{"trailing data", "POST", "/api/v1/jobs", `{"command":["type:exec"]} {}`, 400, "bad_request", "", "after its JSON"},
		{"missing command", "POST", "/api/v1/jobs", `{"args":["true"]}`, 400, "bad_request", "command", "required"},
		{"subject injection in id", "POST", "/api/v1/jobs", `{"id":"a.b.>","command":["type:exec"]}`, 400, "bad_request", "id", "not a valid job id"},
		{"wildcard in id", "POST", "/api/v1/jobs", `{"id":"*","command":["type:exec"]}`, 400, "bad_request", "id", "not a valid job id"},
		{"bad tag", "POST", "/api/v1/jobs", `{"command":["type exec"]}`, 400, "bad_request", "command[0]", "not a valid tag"},
		{"negative memory", "POST", "/api/v1/jobs", `{"command":["type:exec"],"memory":-1}`, 400, "bad_request", "memory", "between"},
		{"reserved env", "POST", "/api/v1/jobs", `{"command":["type:exec"],"env":{"JINN_JOB_ID":"x"}}`, 400, "bad_request", "env.JINN_JOB_ID", "reserved"},
		{"too large", "POST", "/api/v1/jobs", `{"command":["type:exec"],"args":["` + strings.Repeat("x", 2<<20) + `"]}`, 413, "too_large", "", "1048576"},
		{"no such command", "POST", "/api/v1/jobs", `{"command":["type:spark"]}`, 422, "unprocessable", "", "no command has tags [type:spark]"},
		{"no such cluster", "POST", "/api/v1/jobs", `{"command":["type:exec"],"clusters":[["sched:sla"]]}`, 422, "unprocessable", "", "no cluster has these tags"},
		{"unknown job", "GET", "/api/v1/jobs/nope", nil, 404, "not_found", "", "no job nope"},
		{"bad job id in path", "GET", "/api/v1/jobs/a.b", nil, 400, "bad_request", "id", "not a valid job id"},
		{"kill unknown job", "DELETE", "/api/v1/jobs/nope", nil, 404, "not_found", "", "no job"},
		{"kill finished job", "DELETE", "/api/v1/jobs/" + done.ID, nil, 409, "conflict", "", "SUCCEEDED"},
		{"bad status filter", "GET", "/api/v1/jobs?status=DONE", nil, 400, "bad_request", "status", "unknown status"},
		{"bad limit", "GET", "/api/v1/jobs?limit=0", nil, 400, "bad_request", "limit", "1 to 1000"},
		{"bad cursor", "GET", "/api/v1/jobs?cursor=x", nil, 400, "bad_request", "cursor", "not a cursor"},
		{"bad stream", "GET", "/api/v1/jobs/" + done.ID + "/logs?stream=stdin", nil, 400, "bad_request", "stream", "stdout or stderr"},
		{"unknown cluster", "GET", "/api/v1/clusters/nope", nil, 404, "not_found", "", "no cluster nope"},
		{"cluster name injection", "PUT", "/api/v1/clusters/a.b", `{"tags":["x"]}`, 400, "bad_request", "name", "not a valid name"},
		{"cluster name wildcard", "PUT", "/api/v1/clusters/%3E", `{"tags":["x"]}`, 400, "bad_request", "name", "not a valid name"},
		{"cluster name mismatch", "PUT", "/api/v1/clusters/a", `{"name":"b"}`, 400, "bad_request", "name", "path names"},
		{"bad cluster status", "PATCH", "/api/v1/clusters/local", `{"status":"DOWN"}`, 400, "bad_request", "status", "UP, OUT_OF_SERVICE"},
		{"cluster rename", "PATCH", "/api/v1/clusters/local", `{"name":"other"}`, 400, "bad_request", "name", "renamed"},
		{"unknown command", "DELETE", "/api/v1/commands/nope", nil, 404, "not_found", "", "no command nope"},
		{"unknown route", "GET", "/api/v1/nothing", nil, 404, "not_found", "", "no API route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e apiErr
			code := s.do(c.method, c.path, c.body, &e)
			if code != c.status || e.Error.Code != c.code || e.Error.Field != c.field || !strings.Contains(e.Error.Message, c.msg) {
				t.Fatalf("got %d %+v; want %d %s field %q message containing %q", code, e.Error, c.status, c.code, c.field, c.msg)
			}
		})
	}
	// A request nothing can run is recorded INVALID, and says what was tried.
	var e apiErr
	s.do("POST", "/api/v1/jobs", `{"id":"cannot-run","command":["type:exec"],"clusters":[["sched:sla"],["sched:gpu"]]}`, &e)
	if e.Job == nil || e.Job.Status != job.Invalid || !strings.Contains(e.Job.Message, "[sched:sla]") || !strings.Contains(e.Job.Message, "[sched:gpu]") {
		t.Fatalf("rejected job: %+v", e.Job)
	}
	j, err := s.Store.Get(context.Background(), "cannot-run")
	if err != nil || j.Status != job.Invalid {
		t.Fatalf("recorded: %+v %v", j, err)
	}
}

// Output can never be read from outside the job's directory.
func TestOutputPathsStayInside(t *testing.T) {
	s := start(t)
	j := s.submit(bash("echo secret > ../escaped; ln -s /etc/passwd link; echo ok"))
	s.wait(j.ID, 20*time.Second)
	for _, p := range []string{"..%2F..%2Fetc%2Fpasswd", "%2E%2E/%2E%2E/etc/passwd", "../../../etc/passwd", "link", "sub/..%2F..%2F..%2F"} {
		resp, err := http.Get(s.URL + "/api/v1/jobs/" + j.ID + "/output/" + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "root:") {
			t.Fatalf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
}

func TestOutputListingAndRange(t *testing.T) {
	s := start(t)
	j := s.submit(bash("mkdir -p sub; printf 0123456789 > sub/digits; echo out; echo err >&2"))
	s.wait(j.ID, 20*time.Second)
	var list struct{ Entries []job.File }
	if code := s.do("GET", "/api/v1/jobs/"+j.ID+"/output/", nil, &list); code != 200 {
		t.Fatalf("list: %d", code)
	}
	var names []string
	for _, e := range list.Entries {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "run,stderr,stdout,sub" { // run: the job's run script
		t.Fatalf("entries %v", names)
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/jobs/"+j.ID+"/output/sub/digits", nil)
	req.Header.Set("Range", "bytes=3-5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != "345" {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	if got := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stderr"); got != "err\n" {
		t.Fatalf("stderr %q", got)
	}
}

// A live job's output is read from its worker, Range included.
func TestLiveOutputFromWorker(t *testing.T) {
	s := start(t)
	j := s.submit(bash("printf abcdef > live; echo started; sleep 60"))
	s.waitStatus(j.ID, job.Running, 20*time.Second)
	waitFor(t, 20*time.Second, func() bool {
		resp, err := http.Get(s.URL + "/api/v1/jobs/" + j.ID + "/output/stdout")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body) == "started\n"
	})
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/jobs/"+j.ID+"/output/live", nil)
	req.Header.Set("Range", "bytes=2-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != "cdef" {
		t.Fatalf("live range: %d %q", resp.StatusCode, body)
	}
	s.do("DELETE", "/api/v1/jobs/"+j.ID, nil, nil)
	s.wait(j.ID, 20*time.Second)
}

// logs?follow=true streams lines as they are written and ends with the job.
func TestLogsFollow(t *testing.T) {
	s := start(t)
	j := s.submit(bash("for i in 1 2 3; do echo line $i; sleep 0.2; done; echo bye >&2"))
	resp, err := http.Get(s.URL + "/api/v1/jobs/" + j.ID + "/logs?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	first, err := r.ReadString('\n')
	if err != nil || first != "line 1\n" {
		t.Fatalf("first line %q %v", first, err)
	}
	// The first line arrived while the job still ran.
	if j, _ := s.Store.Get(context.Background(), j.ID); j.Status.Terminal() {
		t.Log("job finished before its first line was read; streaming not exercised")
	}
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "line 2\nline 3\n" {
		t.Fatalf("rest %q %v", rest, err)
	}
	if got := s.get(t, "/api/v1/jobs/"+j.ID+"/logs?stream=stderr"); got != "bye\n" {
		t.Fatalf("stderr %q", got)
	}
}

func TestListJobs(t *testing.T) {
	s := start(t)
	var ids []string
	for i, user := range []string{"alice", "bob", "alice", "alice"} {
		req := bash("true")
		req.User = user
		if i == 3 {
			req.Command = []string{"type:nope"} // INVALID
		}
		if i == 3 {
			var e apiErr
			s.do("POST", "/api/v1/jobs", req, &e)
			ids = append(ids, e.Job.ID)
			continue
		}
		ids = append(ids, s.submit(req).ID)
	}
	for _, id := range ids[:3] {
		s.wait(id, 20*time.Second)
	}
	var page struct {
		Jobs []job.Job
		Next string
	}
	s.do("GET", "/api/v1/jobs?user=alice&limit=2", nil, &page)
	if len(page.Jobs) != 2 || page.Jobs[0].ID != ids[3] || page.Jobs[1].ID != ids[2] || page.Next == "" {
		t.Fatalf("page 1: %+v", page)
	}
	s.do("GET", "/api/v1/jobs?user=alice&limit=2&cursor="+page.Next, nil, &page)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != ids[0] || page.Next != "" {
		t.Fatalf("page 2: %+v", page)
	}
	s.do("GET", "/api/v1/jobs?status=invalid", nil, &page)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != ids[3] {
		t.Fatalf("by status: %+v", page)
	}
	s.do("GET", "/api/v1/jobs?cluster=local&user=bob", nil, &page)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != ids[1] {
		t.Fatalf("by cluster and user: %+v", page)
	}
	var workers struct{ Workers []job.Worker }
	s.do("GET", "/api/v1/workers", nil, &workers)
	if len(workers.Workers) != 1 || workers.Workers[0].ID != "local-1" || workers.Workers[0].Allowance != 4096 || workers.Workers[0].Clusters[0] != "local" {
		t.Fatalf("workers: %+v", workers)
	}
}
