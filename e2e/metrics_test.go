package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jinn-fleet/jinn/job"
)

// scrape reads the intake's /metrics into "name{k=v,...}" → value; a
// histogram gives name_count and name_sum.
func (s *sys) scrape() map[string]float64 {
	s.t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		s.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		s.t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			slices.Sort(labels)
			key := func(n string) string { return n + "{" + strings.Join(labels, ",") + "}" }
			switch {
			case m.Counter != nil:
				out[key(name)] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key(name)] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key(name+"_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key(name+"_sum")] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func series(name string, labels ...string) string {
	slices.Sort(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}

func TestMetricsScrapedFromIntake(t *testing.T) {
	s := start(t)
	before := s.scrape()

	ok := s.wait(s.submit(bash("echo fine")).ID, 20*time.Second)
	bad := s.wait(s.submit(bash("exit 3")).ID, 20*time.Second)
	if ok.Status != job.Succeeded || bad.Status != job.Failed {
		t.Fatalf("jobs ended %s and %s", ok.Status, bad.Status)
	}
	var invalid apiErr
	if code := s.do("POST", "/api/v1/jobs", job.Request{Command: []string{"type:nothing-has-this"}}, &invalid); code != http.StatusUnprocessableEntity {
		t.Fatalf("invalid submit: status %d", code)
	}

	bash := []string{"cluster=local", "command=bash"}
	want := map[string]float64{
		series("jinn_jobs_submitted_total", bash...):                                 2,
		series("jinn_jobs_submitted_total", "cluster=", "command="):                  1,
		series("jinn_jobs_started_total", bash...):                                   2,
		series("jinn_jobs_finished_total", append(bash, "status=SUCCEEDED")...):      1,
		series("jinn_jobs_finished_total", append(bash, "status=FAILED")...):         1,
		series("jinn_jobs_finished_total", "cluster=", "command=", "status=INVALID"): 1,
		series("jinn_job_queue_wait_seconds_count", bash...):                         2,
		series("jinn_job_run_seconds_count", append(bash, "status=SUCCEEDED")...):    1,
		series("jinn_job_run_seconds_count", append(bash, "status=FAILED")...):       1,
		series("jinn_jobs_running", bash...):                                         0,
	}
	var after map[string]float64
	moved := func() error {
		after = s.scrape()
		for k, d := range want {
			if got := after[k] - before[k]; got != d {
				return fmt.Errorf("%s moved by %v, want %v", k, got, d)
			}
		}
		return nil
	}
	// The counters move just after the status write the jobs' wait saw.
	deadline := time.Now().Add(10 * time.Second)
	for err := moved(); err != nil; err = moved() {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The worker's memory, from its heartbeats.
	w := s.Workers[0].ID()
	waitFor(t, 5*time.Second, func() bool {
		m := s.scrape()
		for k, v := range m {
			if strings.HasPrefix(k, "jinn_worker_memory_mib{") && strings.Contains(k, "worker="+w) && strings.Contains(k, "kind=allowance") {
				return v == 4096
			}
		}
		return false
	})
	// The Go runtime's metrics come along.
	if _, ok := after[series("go_goroutines")]; !ok {
		t.Error("go_goroutines missing from /metrics")
	}
}
