package deploy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePorts returns n distinct free loopback ports (held open together while
// they are picked, so none repeats).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func joinPorts(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, " ")
}

var intakeLine = regexp.MustCompile(`(?m)^intake-\d: (http://\S+)$`)

// TestLocalCluster starts the README's loopback fleet with
// deploy/local-cluster.sh (3 clustered NATS servers, Redis with the
// production configuration, 2 schedulers, 2 intakes, 2 workers), runs a job
// through each intake with the jinn CLI, and stops it again.
func TestLocalCluster(t *testing.T) {
	needBinary(t, "redis-server")
	needBinary(t, "redis-cli")
	if testing.Short() {
		t.Skip("starts ten processes: not with -short (CI runs it)")
	}
	bin, _ := jinnBinary(t)
	dir := t.TempDir()
	ports := freePorts(t, 12)
	script := filepath.Join(repoRoot(t), "deploy", "local-cluster.sh")
	env := append(os.Environ(),
		"JINN_BIN="+bin,
		"JINN_CLUSTER_DIR="+dir,
		"JINN_NATS_PORTS="+joinPorts(ports[0:3]),
		"JINN_NATS_ROUTE_PORTS="+joinPorts(ports[3:6]),
		"JINN_NATS_HTTP_PORTS="+joinPorts(ports[6:9]),
		"JINN_REDIS_PORT="+strconv.Itoa(ports[9]),
		"JINN_INTAKE_PORTS="+joinPorts(ports[10:12]),
		"JINN_WORKER_MEMORY=512",
		"JINN_START_TIMEOUT=30",
		"JINN_STOP_TIMEOUT=10",
	)
	run := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
		cmd.Env = env
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := run(ctx, "stop")
			if err != nil {
				t.Logf("stop: %v\n%s", err, out)
			}
		}
		killLeftovers(t, dir)
	})

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	out, err := run(ctx, "start")
	if err != nil {
		t.Fatalf("local-cluster.sh start: %v\n%s\n%s", err, out, logsOf(dir))
	}
	t.Logf("started in %v", time.Since(start).Round(time.Millisecond))
	urls := intakeLine.FindAllStringSubmatch(out, -1)
	if len(urls) != 2 {
		t.Fatalf("start printed %d intake URLs, want 2:\n%s", len(urls), out)
	}
	for i, u := range urls {
		if want := fmt.Sprintf("http://127.0.0.1:%d", ports[10+i]); u[1] != want {
			t.Errorf("intake-%d URL %s, want %s", i+1, u[1], want)
		}
	}
	st, err := run(ctx, "status")
	if err != nil || strings.Count(st, " running (pid ") != 10 {
		t.Errorf("status: %v\n%s", err, st)
	}

	// A job through each intake, with the CLI users run.
	for i, u := range urls {
		word := fmt.Sprintf("hi-%d", i+1)
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		cmd := exec.CommandContext(sctx, bin, "submit", "--server", u[1], "--wait", "--", "echo", word)
		got, err := cmd.CombinedOutput()
		scancel()
		if err != nil || strings.TrimSpace(string(got)) != word {
			t.Errorf("jinn submit --server %s --wait -- echo %s = %q, %v\n%s", u[1], word, got, err, logsOf(dir))
		}
	}

	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if out, err := run(sctx, "stop"); err != nil {
		t.Errorf("stop: %v\n%s", err, out)
	}
	stopped = true
	if st, _ := run(sctx, "status"); strings.Contains(st, "running") {
		t.Errorf("after stop:\n%s", st)
	}
	t.Logf("start, two jobs and stop in %v", time.Since(start).Round(time.Millisecond))
}

// logsOf returns the tail of every log of the cluster, for a failure message.
func logsOf(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(f), strings.Join(lines, "\n"))
	}
	return b.String()
}

// killLeftovers kills, by the pids the script recorded, whatever it did not stop.
func killLeftovers(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
			if syscall.Kill(pid, 0) == nil {
				t.Logf("killing leftover %s (pid %d)", filepath.Base(f), pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
