package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"

	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/job"
)

// fakeJinn is a tiny stand-in for jinn's HTTP API: every job is taken to be
// an echo, which succeeds at once and prints the rest of its arguments.
func fakeJinn() *httptest.Server {
	var mu sync.Mutex
	jobs := map[string]*job.Job{}
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	notFound := func(w http.ResponseWriter, id string) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": "no job " + id}})
	}
	mux.HandleFunc("POST /api/v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		var req job.Request
		_ = json.NewDecoder(r.Body).Decode(&req)
		if len(req.Command) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{
				"code": "bad_request", "message": `required: the tags of the command to run, e.g. ["type:exec"]`, "field": "command"}})
			return
		}
		mu.Lock()
		defer mu.Unlock()
		code := 0
		j := &job.Job{ID: fmt.Sprintf("job-%d", len(jobs)+1), Name: req.Name, User: req.User,
			Status: job.Succeeded, Cluster: "local", Command: "exec", Attempt: 1, ExitCode: &code, Request: &req}
		jobs[j.ID] = j
		w.Header().Set("Location", "/api/v1/jobs/"+j.ID)
		writeJSON(w, http.StatusAccepted, j)
	})
	mux.HandleFunc("GET /api/v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		j, ok := jobs[r.PathValue("id")]
		if !ok {
			notFound(w, r.PathValue("id"))
			return
		}
		writeJSON(w, http.StatusOK, j)
	})
	mux.HandleFunc("GET /api/v1/jobs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		j, ok := jobs[r.PathValue("id")]
		if !ok {
			notFound(w, r.PathValue("id"))
			return
		}
		if r.URL.Query().Get("stream") == "stdout" && len(j.Request.Args) > 0 {
			_, _ = io.WriteString(w, strings.Join(j.Request.Args[1:], " ")+"\n")
		}
	})
	return httptest.NewServer(mux)
}

// Submit a job, wait until it ends, and read what it printed.
func Example() {
	srv := fakeJinn()
	defer srv.Close()
	ctx := context.Background()

	c := client.New(srv.URL, client.WithUser("ann"))
	j, err := c.Submit(ctx, &job.Request{
		Name:    "greet",
		Command: []string{"type:exec"}, // the args are the argv
		// Cluster criteria in priority order: bonus clusters first, else local.
		Clusters: [][]string{{"sched:bonus"}, {"type:local"}},
		Args:     []string{"echo", "hello"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	j, err = c.Wait(ctx, j.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(j.ID, j.User, j.Status, *j.ExitCode)

	out, err := c.Logs(ctx, j.ID, client.Stdout, true)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer out.Close()
	_, _ = io.Copy(os.Stdout, out)
	// Output:
	// job-1 ann SUCCEEDED 0
	// hello
}

// Errors answered by the API are *client.APIError values that name the
// field at fault.
func ExampleAPIError() {
	srv := fakeJinn()
	defer srv.Close()
	c := client.New(srv.URL)

	_, err := c.Submit(context.Background(), &job.Request{Args: []string{"true"}})
	var ae *client.APIError
	if errors.As(err, &ae) {
		fmt.Println(ae.Status, ae.Code, ae.Field)
	}
	fmt.Println(err)

	_, err = c.Get(context.Background(), "no-such-job")
	fmt.Println(client.IsNotFound(err))
	// Output:
	// 400 bad_request command
	// submit job: 400 bad_request: required: the tags of the command to run, e.g. ["type:exec"] (field command)
	// true
}
