package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// exchange is one request the fake API expects and its answer.
type exchange struct {
	method string
	path   string // escaped, under /api/v1
	query  string // url.Values.Encode form: keys sorted
	body   string // JSON, compared by value; "" means no body
	status int
	reply  string
}

// fakeAPI serves the exchanges in order and fails the test on any request
// that differs from the next expected one, or on expected ones never made.
type fakeAPI struct {
	t    *testing.T
	mu   sync.Mutex
	want []exchange
	next int
	hdr  http.Header // headers of the last request
}

func serve(t *testing.T, want ...exchange) (*fakeAPI, *httptest.Server) {
	t.Helper()
	f := &fakeAPI{t: t, want: want}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.next != len(f.want) {
			t.Errorf("fake API: %d of %d expected requests made", f.next, len(f.want))
		}
	})
	return f, srv
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.t
	f.hdr = r.Header.Clone()
	got := r.Method + " " + r.URL.EscapedPath() + "?" + r.URL.Query().Encode()
	if f.next >= len(f.want) {
		t.Errorf("unexpected request %s", got)
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	ex := f.want[f.next]
	f.next++
	if want := ex.method + " /api/v1" + ex.path + "?" + ex.query; got != want {
		t.Errorf("request = %s, want %s", got, want)
	}
	body, _ := io.ReadAll(r.Body)
	if ex.body == "" {
		if len(body) != 0 {
			t.Errorf("%s: body = %s, want none", got, body)
		}
	} else {
		if !sameJSON(body, []byte(ex.body)) {
			t.Errorf("%s: body = %s, want %s", got, body, ex.body)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type = %q", got, ct)
		}
	}
	if ex.status == 0 {
		ex.status = http.StatusOK
	}
	if strings.HasPrefix(ex.reply, "{") {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(ex.status)
	_, _ = io.WriteString(w, ex.reply)
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func ptr[T any](v T) *T { return &v }

func TestSubmit(t *testing.T) {
	f, srv := serve(t, exchange{
		method: "POST", path: "/jobs",
		body:   `{"name":"hello","user":"ann","command":["type:exec"],"clusters":[["os:linux"],["type:local"]],"args":["echo","hi"],"memory":64,"retries":0}`,
		status: http.StatusAccepted,
		reply:  `{"id":"j1","name":"hello","user":"ann","status":"ACCEPTED","attempt":0}`,
	})
	c := New(srv.URL, WithUser("ann"), WithToken("s3cret"))
	req := &job.Request{
		Name:     "hello",
		Command:  []string{"type:exec"},
		Clusters: [][]string{{"os:linux"}, {"type:local"}},
		Args:     []string{"echo", "hi"},
		Memory:   64,
		Retries:  ptr(0),
	}
	j, err := c.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != "j1" || j.Status != job.Accepted || j.User != "ann" {
		t.Errorf("job = %+v", j)
	}
	if req.User != "" {
		t.Errorf("Submit changed the caller's request: user = %q", req.User)
	}
	if got := f.hdr.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestSubmitKeepsRequestUser(t *testing.T) {
	_, srv := serve(t, exchange{
		method: "POST", path: "/jobs",
		body:  `{"user":"bob","command":["type:exec"]}`,
		reply: `{"id":"j1","user":"bob","status":"RUNNING","attempt":1}`,
	})
	j, err := New(srv.URL, WithUser("ann")).Submit(context.Background(), &job.Request{User: "bob", Command: []string{"type:exec"}})
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Running || j.Attempt != 1 {
		t.Errorf("job = %+v", j)
	}
}

func TestAPIError(t *testing.T) {
	_, srv := serve(t,
		exchange{
			method: "POST", path: "/jobs", body: `{"id":"x","command":["type:exec"]}`,
			status: http.StatusConflict,
			reply:  `{"error":{"code":"conflict","message":"job x exists with a different request","field":"id"}}`,
		},
		exchange{method: "GET", path: "/jobs/nope", status: http.StatusNotFound, reply: `{"error":{"code":"not_found","message":"no job nope"}}`},
		exchange{method: "GET", path: "/jobs/j2", status: http.StatusBadGateway, reply: "upstream down\n"},
	)
	c := New(srv.URL)
	ctx := context.Background()

	_, err := c.Submit(ctx, &job.Request{ID: "x", Command: []string{"type:exec"}})
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	want := APIError{Status: 409, Code: "conflict", Message: "job x exists with a different request", Field: "id"}
	if *ae != want {
		t.Errorf("APIError = %+v, want %+v", *ae, want)
	}
	if got, want := ae.Error(), "409 conflict: job x exists with a different request (field id)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := err.Error(), "submit job: 409 conflict: job x exists with a different request (field id)"; got != want {
		t.Errorf("wrapped = %q, want %q", got, want)
	}

	_, err = c.Get(ctx, "nope")
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	if got, want := err.Error(), "get job nope: 404 not_found: no job nope"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}

	_, err = c.Get(ctx, "j2")
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Message != "upstream down" || ae.Code != "" {
		t.Fatalf("error = %#v", err)
	}
	if got, want := ae.Error(), "502 bad gateway: upstream down"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if IsNotFound(err) {
		t.Error("IsNotFound(502) = true")
	}
}

func TestGetListKill(t *testing.T) {
	_, srv := serve(t,
		exchange{method: "GET", path: "/jobs/a%2Fb", reply: `{"id":"a/b","status":"QUEUED","attempt":0}`},
		exchange{
			method: "GET", path: "/jobs", query: "cluster=local&cursor=c1&limit=2&status=RUNNING&user=ann",
			reply: `{"jobs":[{"id":"j2","status":"RUNNING","attempt":1},{"id":"j1","status":"RUNNING","attempt":2}],"next":"c2"}`,
		},
		exchange{method: "GET", path: "/jobs", reply: `{"jobs":[],"next":""}`},
		exchange{method: "DELETE", path: "/jobs/j1", status: http.StatusAccepted, reply: `{"id":"j1","status":"RUNNING","attempt":1,"killRequested":true}`},
		exchange{method: "DELETE", path: "/jobs/j0", status: http.StatusConflict, reply: `{"error":{"code":"conflict","message":"job j0 has already finished: SUCCEEDED"}}`},
	)
	c := New(srv.URL + "/")
	ctx := context.Background()

	j, err := c.Get(ctx, "a/b")
	if err != nil || j.ID != "a/b" || j.Status != job.Queued {
		t.Fatalf("Get = %+v, %v", j, err)
	}

	jobs, next, err := c.List(ctx, ListOptions{User: "ann", Status: job.Running, Cluster: "local", Limit: 2, Cursor: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].ID != "j2" || jobs[1].Attempt != 2 || next != "c2" {
		t.Errorf("List = %+v, %q", jobs, next)
	}
	jobs, next, err = c.List(ctx, ListOptions{})
	if err != nil || len(jobs) != 0 || next != "" {
		t.Errorf("List = %+v, %q, %v", jobs, next, err)
	}

	j, err = c.Kill(ctx, "j1")
	if err != nil || !j.KillRequested || j.Status != job.Running {
		t.Errorf("Kill = %+v, %v", j, err)
	}
	_, err = c.Kill(ctx, "j0")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("Kill of a finished job: %v", err)
	}
}

func TestEmptyNamesAreRefused(t *testing.T) {
	_, srv := serve(t) // no request may reach it
	c := New(srv.URL)
	ctx := context.Background()
	if _, err := c.Get(ctx, ""); err == nil {
		t.Error("Get(\"\") succeeded")
	}
	if _, err := c.Kill(ctx, ""); err == nil {
		t.Error("Kill(\"\") succeeded")
	}
	if err := c.DeleteCluster(ctx, ""); err == nil {
		t.Error("DeleteCluster(\"\") succeeded")
	}
	if _, err := c.Logs(ctx, "j1", "stdin", false); err == nil {
		t.Error("Logs of stream stdin succeeded")
	}
	if _, err := c.OutputFile(ctx, "j1", "../etc/passwd"); err == nil {
		t.Error("OutputFile with .. succeeded")
	}
}

func TestLogsAndOutput(t *testing.T) {
	_, srv := serve(t,
		exchange{method: "GET", path: "/jobs/j1/logs", query: "follow=true&stream=stderr", reply: "line 1\nline 2\n"},
		exchange{method: "GET", path: "/jobs/j1/logs", query: "stream=stdout", reply: "out\n"},
		exchange{
			method: "GET", path: "/jobs/j1/output/",
			reply: `{"entries":[{"name":"stdout","size":4,"modTime":"2030-01-02T03:04:05Z"},{"name":"data","size":0,"modTime":"2030-01-02T03:04:05Z","dir":true}]}`,
		},
		exchange{method: "GET", path: "/jobs/j1/output/data/a%20b.txt", reply: "content"},
		exchange{method: "GET", path: "/jobs/j1/output/missing", status: 404, reply: `{"error":{"code":"not_found","message":"no file missing"}}`},
	)
	c := New(srv.URL)
	ctx := context.Background()

	read := func(rc io.ReadCloser, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(c.Logs(ctx, "j1", Stderr, true)); got != "line 1\nline 2\n" {
		t.Errorf("stderr = %q", got)
	}
	if got := read(c.Logs(ctx, "j1", "", false)); got != "out\n" {
		t.Errorf("stdout = %q", got)
	}
	files, err := c.Output(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	want := []job.File{
		{Name: "stdout", Size: 4, ModTime: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Name: "data", ModTime: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Dir: true},
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("Output = %+v, want %+v", files, want)
	}
	if got := read(c.OutputFile(ctx, "j1", "/data/a b.txt")); got != "content" {
		t.Errorf("file = %q", got)
	}
	if _, err := c.OutputFile(ctx, "j1", "missing"); !IsNotFound(err) {
		t.Errorf("missing file: %v", err)
	}
}

func TestLogsStreamAsWritten(t *testing.T) {
	// A follow stream must be readable before the response ends.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "second\n")
	}))
	defer srv.Close()
	defer close(release)
	rc, err := New(srv.URL).Logs(context.Background(), "j1", Stdout, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestWait(t *testing.T) {
	_, srv := serve(t,
		exchange{method: "GET", path: "/jobs/j1", reply: `{"id":"j1","status":"QUEUED","attempt":0}`},
		exchange{method: "GET", path: "/jobs/j1", reply: `{"id":"j1","status":"RUNNING","attempt":1}`},
		// An intake restarting: Wait rides it out.
		exchange{method: "GET", path: "/jobs/j1", status: http.StatusBadGateway, reply: "restarting"},
		exchange{method: "GET", path: "/jobs/j1", reply: `{"id":"j1","status":"FAILED","attempt":1,"exitCode":3}`},
	)
	start := time.Now()
	j, err := New(srv.URL).Wait(context.Background(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Failed || j.ExitCode == nil || *j.ExitCode != 3 {
		t.Errorf("Wait = %+v", j)
	}
	if d := time.Since(start); d < 350*time.Millisecond { // 50ms + 100ms + 200ms of backoff
		t.Errorf("Wait polled without backing off: %v", d)
	}
}

func TestWaitGivesUpOnRequestErrors(t *testing.T) {
	_, srv := serve(t,
		exchange{method: "GET", path: "/jobs/j1", reply: `{"id":"j1","status":"RUNNING","attempt":1}`},
		exchange{method: "GET", path: "/jobs/j1", status: http.StatusNotFound, reply: `{"error":{"code":"not_found","message":"no job j1"}}`},
	)
	j, err := New(srv.URL).Wait(context.Background(), "j1")
	if !IsNotFound(err) || j == nil || j.Status != job.Running {
		t.Errorf("Wait = %+v, %v", j, err)
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":"j1","status":"RUNNING","attempt":1}`)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	j, err := New(srv.URL).Wait(ctx, "j1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if j == nil || j.Status != job.Running {
		t.Errorf("last job = %+v", j)
	}
}

func TestConfig(t *testing.T) {
	_, srv := serve(t,
		exchange{method: "GET", path: "/clusters", reply: `{"clusters":[{"name":"local","tags":["type:local"],"status":"UP"}]}`},
		exchange{method: "GET", path: "/clusters/local", reply: `{"name":"local","status":"UP"}`},
		exchange{
			method: "PUT", path: "/clusters/spark", body: `{"name":"spark","tags":["type:spark"],"status":"UP"}`,
			reply: `{"name":"spark","tags":["type:spark"],"status":"UP","description":"stored"}`,
		},
		exchange{method: "PATCH", path: "/clusters/spark", body: `{"status":"OUT_OF_SERVICE"}`, reply: `{"name":"spark","status":"OUT_OF_SERVICE"}`},
		exchange{method: "DELETE", path: "/clusters/spark", status: http.StatusNoContent},
		exchange{method: "GET", path: "/commands", reply: `{"commands":[{"name":"sh","status":"ACTIVE","executable":["/bin/sh","-c"]}]}`},
		exchange{method: "GET", path: "/commands/sh", reply: `{"name":"sh","status":"ACTIVE","executable":["/bin/sh","-c"]}`},
		exchange{method: "PUT", path: "/commands/sh", body: `{"name":"sh","status":"ACTIVE","executable":["/bin/sh","-c"],"memory":128}`, status: http.StatusNoContent},
		exchange{method: "PATCH", path: "/commands/sh", body: `{"status":"DEPRECATED"}`, reply: `{"name":"sh","status":"DEPRECATED","executable":["/bin/sh","-c"]}`},
		exchange{method: "DELETE", path: "/commands/sh", status: http.StatusNotFound, reply: `{"error":{"code":"not_found","message":"no command sh"}}`},
		exchange{method: "GET", path: "/workers", reply: `{"workers":[{"id":"w1","pool":"default","host":"h1","clusters":["local"],"allowance":4096,"reserved":512,"jobs":["j1"],"state":"ACTIVE","started":"2030-01-01T00:00:00Z","heartbeat":"2030-01-01T00:00:05Z"}]}`},
	)
	c := New(srv.URL)
	ctx := context.Background()

	cls, err := c.Clusters(ctx)
	if err != nil || len(cls) != 1 || cls[0].Name != "local" || cls[0].Tags[0] != "type:local" {
		t.Errorf("Clusters = %+v, %v", cls, err)
	}
	cl, err := c.Cluster(ctx, "local")
	if err != nil || cl.Status != job.ClusterUp {
		t.Errorf("Cluster = %+v, %v", cl, err)
	}
	cl, err = c.PutCluster(ctx, &job.Cluster{Name: "spark", Tags: []string{"type:spark"}, Status: job.ClusterUp})
	if err != nil || cl.Description != "stored" {
		t.Errorf("PutCluster = %+v, %v", cl, err)
	}
	cl, err = c.PatchCluster(ctx, "spark", map[string]any{"status": job.ClusterOutOfService})
	if err != nil || cl.Status != job.ClusterOutOfService {
		t.Errorf("PatchCluster = %+v, %v", cl, err)
	}
	if err := c.DeleteCluster(ctx, "spark"); err != nil {
		t.Errorf("DeleteCluster: %v", err)
	}

	cmds, err := c.Commands(ctx)
	if err != nil || len(cmds) != 1 || cmds[0].Executable[1] != "-c" {
		t.Errorf("Commands = %+v, %v", cmds, err)
	}
	cmd, err := c.Command(ctx, "sh")
	if err != nil || cmd.Name != "sh" {
		t.Errorf("Command = %+v, %v", cmd, err)
	}
	// A 204 answer to a PUT returns what was sent.
	cmd, err = c.PutCommand(ctx, &job.Command{Name: "sh", Status: job.CommandActive, Executable: []string{"/bin/sh", "-c"}, Memory: 128})
	if err != nil || cmd.Memory != 128 {
		t.Errorf("PutCommand = %+v, %v", cmd, err)
	}
	cmd, err = c.PatchCommand(ctx, "sh", map[string]any{"status": job.CommandDeprecated})
	if err != nil || cmd.Status != job.CommandDeprecated {
		t.Errorf("PatchCommand = %+v, %v", cmd, err)
	}
	err = c.DeleteCommand(ctx, "sh")
	if got, want := err.Error(), "delete command sh: 404 not_found: no command sh"; got != want {
		t.Errorf("DeleteCommand = %q, want %q", got, want)
	}

	ws, err := c.Workers(ctx)
	if err != nil || len(ws) != 1 || ws[0].Free() != 3584 || ws[0].Jobs[0] != "j1" {
		t.Errorf("Workers = %+v, %v", ws, err)
	}
}

func TestNewBaseURL(t *testing.T) {
	for _, base := range []string{"http://h:1", "http://h:1/", "http://h:1/api/v1", "http://h:1/api/v1/"} {
		if got := New(base).base; got != "http://h:1/api/v1" {
			t.Errorf("New(%q).base = %q", base, got)
		}
	}
	if got := New("https://h/jinn").base; got != "https://h/jinn/api/v1" {
		t.Errorf("behind a prefix: %q", got)
	}
}
