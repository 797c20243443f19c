package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

func TestHelloWorld(t *testing.T) {
	s := start(t)
	j := s.submit(job.Request{Name: "hello", User: "alice", Command: []string{"type:exec"}, Args: []string{"echo", "hello"}})
	if j.Status != job.Queued || j.Cluster != "local" || j.Command != "exec" {
		t.Fatalf("submitted job: %+v", j)
	}
	done := s.wait(j.ID, 20*time.Second)
	if done.Status != job.Succeeded || done.ExitCode == nil || *done.ExitCode != 0 {
		t.Fatalf("final: %+v", done)
	}
	resp, err := http.Get(s.URL + "/api/v1/jobs/" + j.ID + "/output/stdout")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(out) != "hello\n" {
		t.Fatalf("stdout %q", out)
	}
}
