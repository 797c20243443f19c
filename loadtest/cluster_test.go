package loadtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// jinnBinary builds cmd/jinn once, with the compile flags the other tests
// use, so that the compiled packages are shared between them.
var jinnBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "jinn-loadtest-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "jinn")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/jinn-fleet/jinn/cmd/jinn")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err, string(out)}
	}
	return bin, nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func needTools(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"go", "redis-server", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed (CI=true: .ci/run installs it): %v", tool, err)
			}
			t.Skipf("%s is needed (under CI=true this fails): %v", tool, err)
		}
	}
	bin, err := jinnBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// The cluster topology as separate processes, with a worker killed and the
// leader killed mid-run: nothing lost, nothing run twice at once.
func TestClusterTopologyUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen processes: not with -short (CI runs it)")
	}
	bin := needTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cc := ClusterConfig{Binary: bin, Dir: dir, BasePort: 26100 + os.Getpid()%500*10, Workers: 2, AckWait: 2 * time.Second, Heartbeat: 200 * time.Millisecond}
	c, err := StartCluster(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	faults := []Fault{
		{At: time.Second, Action: "kill", Target: "worker-1", Down: time.Second},
		{At: 3 * time.Second, Action: "kill", Target: "leader", Down: time.Second},
	}
	var notes []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		Chaos(ctx, c, faults, func(s string) { notes = append(notes, s) })
	}()
	res, err := Run(ctx, Config{
		Server: strings.Join(c.Intakes, ","), Concurrency: 4, Jobs: 120,
		Shape:   Shape{Kind: "sleep", Dist: "uniform", Max: 200 * time.Millisecond},
		SinkDir: filepath.Join(dir, "sink"), Settle: time.Minute,
	})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	res.WriteTable(&table)
	t.Logf("faults: %v\n%s", notes, table.String())
	if !res.OK() || res.Accepted != 120 {
		t.Fatalf("promises broken:\n%s", table.String())
	}
	if len(notes) != 2 || strings.Contains(strings.Join(notes, " "), ":") {
		t.Fatalf("faults not all applied: %v", notes)
	}
}
