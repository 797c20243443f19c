package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// A draining worker pulls nothing more, finishes what it runs, then stops.
func TestDrainFinishesRunningJobs(t *testing.T) {
	s := start(t)
	w := s.Workers[0]
	running := s.submit(bash("sleep 1; echo finished"))
	s.waitStatus(running.ID, job.Running, 20*time.Second)
	w.Drain()
	ws, err := s.Store.Worker(context.Background(), w.ID())
	if err != nil || ws.State != job.WorkerDraining {
		t.Fatalf("worker while draining: %+v %v", ws, err)
	}
	later := s.submit(bash("echo later"))
	select {
	case <-w.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop after its job finished")
	}
	done, _ := s.Store.Get(context.Background(), running.ID)
	if done.Status != job.Succeeded {
		t.Fatalf("running job after drain: %+v", done)
	}
	if out := s.get(t, "/api/v1/jobs/"+running.ID+"/output/stdout"); out != "finished\n" {
		t.Fatalf("stdout %q", out)
	}
	j, _ := s.Store.Get(context.Background(), later.ID)
	if j.Status != job.Queued || j.Attempt != 0 {
		t.Fatalf("job submitted during the drain: %+v", j)
	}
	if _, err := s.Store.Worker(context.Background(), w.ID()); err == nil {
		t.Fatal("a stopped worker still has a heartbeat")
	}
}
