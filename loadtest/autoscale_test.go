package loadtest

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// The report of a run: the plot is a PNG, the samples a CSV, and the
// markdown has the outcome, the timings and the decisions.
func TestAutoscaleReportWrite(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cfg := AutoscaleConfig{Binary: "/bin/true"}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	r := &AutoscaleReport{Config: cfg, Start: start, Elapsed: 60 * time.Second, Submitted: 10,
		ByStatus: map[job.Status]int{job.Succeeded: 10}, MaxActive: 2, FinalActive: 1}
	for i := range 120 {
		active := 1 + (i/40)%2
		r.Samples = append(r.Samples, PoolSample{At: time.Duration(i) * 500 * time.Millisecond, Active: active, Desired: active,
			Load: float64(i%50) / 60, Allowance: 1024 * active, Reserved: 400 * (i % 3), WaitingMemory: 400 * (i % 2)})
	}
	up := job.ScaleDecision{Time: start.Add(20 * time.Second), Since: start.Add(15 * time.Second), Action: job.ScaleUp, Rule: job.RuleHigh, Size: 1, Desired: 2, Reason: "load | high"}
	down := job.ScaleDecision{Time: start.Add(40 * time.Second), Action: job.ScaleDown, Rule: job.RuleLow, Size: 2, Desired: 1, Drain: "w2", Reason: "idle"}
	r.Decisions = []job.ScaleDecision{up, down}
	finals := map[string]*job.Job{
		"a": {ID: "a", Status: job.Succeeded, Worker: "w1", Started: asTimePtr(start.Add(time.Second))},
		"b": {ID: "b", Status: job.Succeeded, Worker: "w2", Started: asTimePtr(start.Add(21 * time.Second))},
	}
	r.measure(finals, &job.Pool{Size: 1}, map[string]time.Time{"w2": start.Add(20500 * time.Millisecond)})
	if len(r.ScaleUps) != 1 || r.ScaleUps[0].Worker != "w2" || r.ScaleUps[0].ToDecision != 5*time.Second ||
		r.ScaleUps[0].ToWorker != 5500*time.Millisecond || r.ScaleUps[0].ToFirstJob != 6*time.Second {
		t.Fatalf("scale-up timings %+v", r.ScaleUps)
	}
	if r.JobsOnDrained != 1 || r.DrainedFailed != 0 || len(r.Drained) != 1 {
		t.Fatalf("drained: %v, %d jobs, %d failed", r.Drained, r.JobsOnDrained, r.DrainedFailed)
	}

	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "autoscale.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 500 {
		t.Fatalf("plot: %v, %v", img.Bounds(), err)
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "samples.csv"))
	if lines := strings.Count(string(csv), "\n"); lines != 121 {
		t.Fatalf("samples.csv has %d lines, want 121", lines)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"| succeeded | 10 |", "| 1 (1 → 2) | high | 5.00s | 5.50s | 6.00s |", "| 40.0 | down/low | 2 → 1 |", "load / high"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
}

func asTimePtr(t time.Time) *time.Time { return &t }
