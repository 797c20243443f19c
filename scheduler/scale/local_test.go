package scale_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/scheduler/scale"
)

// fakeWorker is a stand-in for `jinn worker`: it reports its arguments on a
// FIFO the test reads, then waits for SIGTERM and exits. (The end-to-end
// tests run the real binary.)
const fakeWorker = `#!/bin/sh
trap 'echo "stop $*" > "$FAKE_READY"; exit 0' TERM
echo "start $*" > "$FAKE_READY"
while :; do sleep 1 & wait $!; done
`

type fakeWorkers struct {
	p     *scale.Local
	lines chan string
}

func newLocal(t *testing.T) *fakeWorkers {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "jinn")
	if err := os.WriteFile(bin, []byte(fakeWorker), 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "ready")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opened for reading and writing, so that it never reads EOF between
	// two workers' lines.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(f)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	p, err := scale.NewLocal(scale.LocalConfig{Binary: bin, Args: []string{"--nats", "nats://x", "--job-memory", "1000"},
		DataDir: filepath.Join(dir, "workers"), Env: []string{"FAKE_READY=" + fifo}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
		f.Close()
	})
	return &fakeWorkers{p: p, lines: lines}
}

// next returns the next line a fake worker wrote.
func (w *fakeWorkers) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-w.lines:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no fake worker reported")
		return ""
	}
}

func (w *fakeWorkers) live(t *testing.T, pool string) []scale.Instance {
	t.Helper()
	list, err := w.p.List(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	var out []scale.Instance
	for _, in := range list {
		if in.Live {
			out = append(out, in)
		}
	}
	return out
}

func TestLocal(t *testing.T) {
	ctx := context.Background()
	w := newLocal(t)
	if err := w.p.SetDesired(ctx, "default", 2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		l := w.next(t)
		if !strings.HasPrefix(l, "start worker --nats nats://x --job-memory 1000 --pool default --id default-") || !strings.Contains(l, " --data-dir ") {
			t.Fatalf("a worker started as %q", l)
		}
	}
	live := w.live(t, "default")
	if len(live) != 2 || live[0].State != "running" {
		t.Fatalf("live workers %+v, want 2", live)
	}
	// Absolute: asking again starts nothing; asking for fewer stops nothing.
	for _, n := range []int{2, 1, 0} {
		if err := w.p.SetDesired(ctx, "default", n); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.p.SetDesired(ctx, "other", 1); err != nil {
		t.Fatal(err)
	}
	if l := w.next(t); !strings.Contains(l, "--pool other") {
		t.Fatalf("the other pool's worker started as %q", l)
	}
	if n := len(w.live(t, "default")); n != 2 {
		t.Fatalf("%d live workers in default, want 2", n)
	}

	// A drained worker exits by itself (here: SIGTERM stands in for the
	// drain); Remove waits for that and forgets it.
	victim := live[0].ID
	changed := w.p.Changed()
	if err := syscall.Kill(pidOf(t, victim), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if l := w.next(t); !strings.Contains(l, "--id "+victim) {
		t.Fatalf("stopped %q, want %s", l, victim)
	}
	<-changed
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.p.Remove(rctx, "default", victim); err != nil {
		t.Fatal(err)
	}
	list, _ := w.p.List(ctx, "default")
	if len(list) != 1 || list[0].ID == victim {
		t.Fatalf("after remove: %+v", list)
	}
	if err := w.p.Remove(ctx, "default", victim); err != nil {
		t.Fatalf("removing twice: %v", err)
	}

	// Remove of a worker still running returns when ctx ends, and keeps it.
	busy := list[0].ID
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := w.p.Remove(short, "default", busy); err == nil || !strings.Contains(err.Error(), "has not exited yet") {
		t.Fatalf("remove of a running worker: %v", err)
	}
	if n := len(w.live(t, "default")); n != 1 {
		t.Fatalf("%d live workers, want 1", n)
	}
	// A worker that died is replaced by the next SetDesired.
	if err := w.p.SetDesired(ctx, "default", 2); err != nil {
		t.Fatal(err)
	}
	if l := w.next(t); !strings.HasPrefix(l, "start ") {
		t.Fatalf("replacement: %q", l)
	}
}

// Close drains every worker with SIGTERM and waits for them.
func TestLocalClose(t *testing.T) {
	w := newLocal(t)
	if err := w.p.SetDesired(context.Background(), "default", 3); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w.next(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.p.Close(ctx)
	for range 3 {
		if l := w.next(t); !strings.HasPrefix(l, "stop ") {
			t.Fatalf("%q, want a drained worker", l)
		}
	}
	if n := len(w.live(t, "default")); n != 0 {
		t.Fatalf("%d live workers after close", n)
	}
	if err := w.p.SetDesired(context.Background(), "default", 1); err == nil {
		t.Fatal("a closed provider started a worker")
	}
}

// pidOf finds a fake worker's process by the --id in its command line.
func pidOf(t *testing.T, id string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i, a := range args {
			if a == "--id" && i+1 < len(args) && args[i+1] == id {
				var pid int
				for _, c := range strings.TrimSuffix(strings.TrimPrefix(p, "/proc/"), "/cmdline") {
					pid = pid*10 + int(c-'0')
				}
				return pid
			}
		}
	}
	t.Fatalf("no process with --id %s", id)
	return 0
}
