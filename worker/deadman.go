package worker

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// deadMan is a job's dead man's switch. The worker writes a beat to a pipe
// (fd 3 of the run script) every quarter of the timeout; a watcher the run
// script starts in the job's process group kills the whole group when no
// beat came for the timeout, or when the pipe closes. So a job does not run
// on when its worker died (grandchildren included, which Pdeathsig misses) or
// froze alone (SIGSTOP, a stuck runtime): it is killed before its lease runs
// out and before its next attempt can start elsewhere.
type deadMan struct {
	r, w    *os.File
	timeout time.Duration
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// beatTimeout is the silence after which a job is killed: half the lease,
// so that the kill comes before the lease (extended every third of it) runs
// out; never under 2 s, so that a loaded machine does not kill healthy jobs.
func beatTimeout(ackWait time.Duration) time.Duration {
	return max(ackWait/2, 2*time.Second)
}

// attach gives cmd the read end as fd 3 and the timeout in JINN_BEAT_TIMEOUT.
func newDeadMan(cmd *exec.Cmd, timeout time.Duration) (*deadMan, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("dead man's switch: %w", err)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, r) // fd 3
	cmd.Env = append(cmd.Env, fmt.Sprintf("JINN_BEAT_TIMEOUT=%.1f", timeout.Seconds()))
	return &deadMan{r: r, w: w, timeout: timeout, stop: make(chan struct{})}, nil
}

// beat starts beating; call it once the process started.
func (d *deadMan) beat() {
	d.r.Close() // the job holds it now
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(d.timeout / 4)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if _, err := d.w.Write([]byte{'\n'}); err != nil {
					return // the watcher is gone: the job ended or killed itself
				}
			case <-d.stop:
				return
			}
		}
	}()
}

// close stops beating and closes the pipe. Call it after the job's process
// group is gone: a closed pipe makes the watcher kill the group.
func (d *deadMan) close() {
	d.once.Do(func() {
		close(d.stop)
		d.wg.Wait()
		d.w.Close()
		d.r.Close()
	})
}
