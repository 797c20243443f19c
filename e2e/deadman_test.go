package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// jobPids starts a job on a spawned worker that leaves a grandchild, and
// returns the pids of the job's command and of the grandchild.
func jobPids(t *testing.T, s *sys, pidFile string) []int {
	t.Helper()
	j := s.submit(bash(`sleep 300 & echo $! >> ` + pidFile + `; echo $$ >> ` + pidFile + `; wait`))
	s.waitStatus(j.ID, job.Running, 20*time.Second)
	var pids []int
	waitFor(t, 20*time.Second, func() bool {
		data, _ := os.ReadFile(pidFile)
		pids = pids[:0]
		for _, f := range strings.Fields(string(data)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
		return len(pids) == 2
	})
	for _, p := range pids {
		if syscall.Kill(p, 0) != nil {
			t.Fatalf("job process %d not running", p)
		}
	}
	return pids
}

// gone reports whether every process has ended. A zombie has ended: it only
// waits to be reaped (by a frozen worker, not before it resumes).
func gone(pids []int) func() bool {
	return func() bool {
		for _, p := range pids {
			stat, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ...: the state follows the last ')'.
			if i := strings.LastIndexByte(string(stat), ')'); i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z' {
				return false
			}
		}
		return true
	}
}

// A worker frozen alone (SIGSTOP) stops beating: its job, grandchildren
// included, is killed before the job's lease runs out, so its next attempt
// can never overlap it.
func TestFrozenWorkersJobIsKilledBeforeItsLeaseEnds(t *testing.T) {
	const ackWait = 4 * time.Second
	dir := t.TempDir()
	s := start(t, withWorkers(-1), withAckWait(ackWait), withDataDir(dir))
	w := s.spawnWorker(t, "frozen", dir, ackWait)
	waitFor(t, 20*time.Second, func() bool { _, err := s.Store.Worker(context.Background(), "frozen"); return err == nil })
	pids := jobPids(t, s, filepath.Join(t.TempDir(), "pids"))

	frozen := time.Now()
	if err := w.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer w.Process.Signal(syscall.SIGCONT)
	waitFor(t, ackWait, gone(pids)) // 2/3 of AckWait is the earliest a next attempt starts
	if d := time.Since(frozen); d > 2*ackWait/3 {
		t.Fatalf("the job outlived the frozen worker's lease window: %s", d)
	}
}

// A worker killed with SIGKILL takes its job's whole process group with it,
// grandchildren included.
func TestKilledWorkersGrandchildrenDie(t *testing.T) {
	const ackWait = 4 * time.Second
	dir := t.TempDir()
	s := start(t, withWorkers(-1), withAckWait(ackWait), withDataDir(dir))
	w := s.spawnWorker(t, "doomed", dir, ackWait)
	waitFor(t, 20*time.Second, func() bool { _, err := s.Store.Worker(context.Background(), "doomed"); return err == nil })
	pids := jobPids(t, s, filepath.Join(t.TempDir(), "pids"))
	if err := w.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, gone(pids))
}
