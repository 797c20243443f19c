package metrics

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var runs atomic.Int64

func unique(s string) string { return fmt.Sprintf("%s-%d", s, runs.Add(1)) }

func TestJobLifecycle(t *testing.T) {
	cl, cmd := unique("cluster"), unique("command") // the registry lives across -count runs
	JobSubmitted(cl, cmd)
	JobStarted(cl, cmd, 2*time.Second)
	if got := testutil.ToFloat64(JobsRunning.WithLabelValues(cl, cmd)); got != 1 {
		t.Fatalf("running %v, want 1", got)
	}
	JobFinished(cl, cmd, "SUCCEEDED", 3*time.Second)
	JobStarted(cl, cmd, -1)            // queue wait unknown: not observed
	JobLeft(cl, cmd)                   // handed back
	JobFinished(cl, cmd, "KILLED", -1) // settled before it ran here
	if got := testutil.ToFloat64(JobsRunning.WithLabelValues(cl, cmd)); got != 0 {
		t.Fatalf("running %v, want 0", got)
	}
	if got := testutil.ToFloat64(JobsStarted.WithLabelValues(cl, cmd)); got != 2 {
		t.Fatalf("started %v, want 2", got)
	}
	for st, want := range map[string]float64{"SUCCEEDED": 1, "KILLED": 1} {
		if got := testutil.ToFloat64(JobsFinished.WithLabelValues(cl, cmd, st)); got != want {
			t.Fatalf("finished %s: %v, want %v", st, got, want)
		}
	}
	if n := testutil.CollectAndCount(QueueWait, "jinn_job_queue_wait_seconds"); n < 1 {
		t.Fatalf("queue wait series %d", n)
	}
	if got := testutil.ToFloat64(JobsSubmitted.WithLabelValues(cl, cmd)); got != 1 {
		t.Fatalf("submitted %v, want 1", got)
	}
}

func TestPoolAndDecisions(t *testing.T) {
	p1 := unique("pool")
	Pool(p1, 2, 3, "up")
	Pool(p1, 3, 3, "hold")
	Pool(p1, 3, 2, "down")
	if got := testutil.ToFloat64(PoolSize.WithLabelValues(p1)); got != 3 {
		t.Fatalf("size %v", got)
	}
	if got := testutil.ToFloat64(PoolDesired.WithLabelValues(p1)); got != 2 {
		t.Fatalf("desired %v", got)
	}
	for dir, want := range map[string]float64{"up": 1, "down": 1, "hold": 0} {
		if got := testutil.ToFloat64(ScaleDecisions.WithLabelValues(p1, dir)); got != want {
			t.Fatalf("decisions %s: %v, want %v", dir, got, want)
		}
	}
}

func TestWorkerMemorySeriesGoWithTheWorker(t *testing.T) {
	Worker("w1", "pool", 1000, 300, 120)
	if got := testutil.ToFloat64(WorkerMemory.WithLabelValues("w1", "pool", "reserved")); got != 300 {
		t.Fatalf("reserved %v", got)
	}
	WorkerGone("w1", "pool")
	if n := testutil.CollectAndCount(WorkerMemory); n != 0 {
		t.Fatalf("%d series after the worker left", n)
	}
}

func TestServe(t *testing.T) {
	NATSError("disconnect")
	stop, addr, err := Serve("127.0.0.1:0", func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `jinn_nats_errors_total{kind="disconnect"}`) {
		t.Fatalf("%s\n%s", resp.Status, body)
	}
}
