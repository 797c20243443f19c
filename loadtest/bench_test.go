package loadtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchSmall runs the whole suite small (no footprint: it needs the jinn
// binary) and checks it measured every figure and wrote the report between
// its markers, keeping the text around them.
func TestBenchSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two fleets: not with -short (CI runs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := RunBench(ctx, BenchConfig{Dir: t.TempDir(), Concurrency: 2, Jobs: 30, Level: 500 * time.Millisecond,
		Window: 300 * time.Millisecond, Simulated: []int{200}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Jinn.PerSec <= 0 || rep.Floor.PerSec <= 0 || rep.Intake.N == 0 || rep.IntakeFloor.N == 0 ||
		rep.Publisher.N == 0 || rep.RawPublish.N == 0 || len(rep.Levels) != 3 || len(rep.Scale) != 1 || rep.Scale[0].Autoscale <= 0 {
		t.Fatalf("a figure is missing: %+v", rep)
	}
	for _, l := range rep.Levels {
		if l.Started.N == 0 {
			t.Fatalf("level %.2f measured no start", l.Fraction)
		}
	}
	dir := t.TempDir()
	md := filepath.Join(dir, "performance.md")
	if err := os.WriteFile(md, []byte("# Performance\n\nbefore\n\n"+benchBegin+"\nold\n"+benchEnd+"\n\nanalysis\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteFiles(md, filepath.Join(dir, "performance")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"before", "analysis", "trivial jobs end to end", "performance/latency.png"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\nold\n") || strings.Count(text, benchBegin) != 1 {
		t.Errorf("the old run was not replaced:\n%s", text)
	}
	for _, png := range []string{"latency.png", "throughput.png"} {
		if fi, err := os.Stat(filepath.Join(dir, "performance", png)); err != nil || fi.Size() == 0 {
			t.Errorf("plot %s: %v", png, err)
		}
	}
	t.Logf("\n%s", text)
}
