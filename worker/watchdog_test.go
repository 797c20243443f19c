package worker

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestParseStat(t *testing.T) {
	cases := []struct {
		line       string
		pgrp       int
		pages      int64
		ok         bool
		whyItCount string
	}{
		{"4242 (perl) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 100 319000000 76912 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0", 4242, 76912, true, "plain"},
		{"7 (a) b (c)) R 1 99 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 1000 12 0", 99, 12, true, "a name with spaces and parentheses"},
		{"7 (x) R 1", 0, 0, false, "too short"},
		{"garbage", 0, 0, false, "no name"},
	}
	for _, c := range cases {
		pgrp, pages, ok := parseStat(c.line)
		if pgrp != c.pgrp || pages != c.pages || ok != c.ok {
			t.Errorf("%s: got %d %d %v, want %d %d %v", c.whyItCount, pgrp, pages, ok, c.pgrp, c.pages, c.ok)
		}
	}
}

func TestWatchdogKillsAGroupOverItsMemory(t *testing.T) {
	w := newWatchdog(20*time.Millisecond, hclog.NewNullLogger())
	defer w.close()
	// The group's main process stays small; its child grows: the sum counts.
	cmd := exec.Command("sh", "-c", `perl -e '$x = "a" x (300 << 20); sleep 30'; sleep 30`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	lim, err := w.start("over", 50, cmd)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-lim.(*groupWatch).over:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("the watchdog did not see the group pass its memory")
	}
	_ = cmd.Wait() // killed with its group
	peak, over := lim.finish()
	if !over || peak <= 50 {
		t.Fatalf("over %v, peak %d MiB; want over, above 50", over, peak)
	}
}

func TestWatchdogMeasuresAJobWithinItsMemory(t *testing.T) {
	w := newWatchdog(10*time.Millisecond, hclog.NewNullLogger())
	defer w.close()
	// perl holds 30 MiB until the test reads its peak, then exits.
	cmd := exec.Command("perl", "-e", `$x = "a" x (30 << 20); <STDIN>`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	lim, err := w.start("within", 100, cmd)
	if err != nil {
		t.Fatal(err)
	}
	g := lim.(*groupWatch)
	deadline := time.Now().Add(20 * time.Second)
	for {
		w.mu.Lock()
		peak := g.peak
		w.mu.Unlock()
		if peak >= 30<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peak %d bytes after 20s", peak)
		}
		w.scan() // a scan now instead of waiting for the ticker
	}
	if u := w.used(); u < 30 || u > 100 {
		t.Errorf("used %d MiB while the job holds 30", u)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	peak, over := lim.finish()
	if over || peak < 30 || peak > 100 {
		t.Fatalf("over %v, peak %d MiB; want not over, 30 to 100", over, peak)
	}
}
