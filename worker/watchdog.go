package worker

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// watchdog enforces memory where the worker cannot make cgroups: every
// interval it reads /proc/<pid>/stat of every process once, sums the
// resident memory (RSS) of each watched job's process group, records the
// peak, and kills a group whose sum passes its job's memory. One scan serves
// every job of the worker.
//
// Its limits: a spike shorter than the interval goes unseen; a process that
// leaves the group (setsid, setpgid) is not counted; memory shared between
// processes of the group is counted once per process.
type watchdog struct {
	interval time.Duration
	log      hclog.Logger
	pageSize int64

	mu     sync.Mutex
	groups map[int]*groupWatch // by process group id
	wake   chan struct{}       // a group was added while the loop slept
	stop   chan struct{}
	loop   sync.WaitGroup
	closed bool
}

// groupWatch is the watch over one job's process group.
type groupWatch struct {
	w     *watchdog
	pgid  int
	limit int64 // bytes
	now   int64 // bytes, the sum at the last scan
	peak  int64 // bytes, the highest sum seen
	hit   bool
	over  chan struct{} // closed when the group was killed for its memory (tests wait on it)
}

func newWatchdog(interval time.Duration, log hclog.Logger) *watchdog {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	w := &watchdog{interval: interval, log: log, pageSize: int64(os.Getpagesize()),
		groups: map[int]*groupWatch{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	w.loop.Add(1)
	go w.run()
	return w
}

func (w *watchdog) kind() string { return EnforceWatchdog }

// used is the RSS of the watched groups at the last scan.
func (w *watchdog) used() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var sum int64
	for _, g := range w.groups {
		sum += g.now
	}
	return int(sum >> 20)
}

func (w *watchdog) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	w.loop.Wait()
}

// start starts cmd (in a process group of its own, as the executor makes
// it) and watches the group.
func (w *watchdog) start(_ string, mib int, cmd *exec.Cmd) (memoryLimit, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if mib <= 0 { // a message from before memory was part of a job: no limit
		return noLimit{}, nil
	}
	return w.watch(cmd.Process.Pid, mib), nil
}

// watch adds process group pgid, limited to mib MiB, and scans it at once.
func (w *watchdog) watch(pgid, mib int) *groupWatch {
	g := &groupWatch{w: w, pgid: pgid, limit: int64(mib) << 20, over: make(chan struct{})}
	w.mu.Lock()
	w.groups[pgid] = g
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return g
}

func (g *groupWatch) finish() (int, bool) {
	w := g.w
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.groups, g.pgid)
	return int((g.peak + 1<<20 - 1) >> 20), g.hit
}

func (w *watchdog) run() {
	defer w.loop.Done()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.wake:
		case <-w.stop:
			return
		}
		w.mu.Lock()
		n := len(w.groups)
		w.mu.Unlock()
		if n > 0 {
			w.scan()
		}
	}
}

// scan reads every process once and settles every watched group.
func (w *watchdog) scan() {
	rss := groupRSS(w.pageSize)
	w.mu.Lock()
	defer w.mu.Unlock()
	for pgid, g := range w.groups {
		sum := rss[pgid]
		g.now = sum
		if sum > g.peak {
			g.peak = sum
		}
		if sum > g.limit && !g.hit {
			g.hit = true
			w.log.Warn("job over its memory: killing its process group", "pgid", pgid, "rss_mib", sum>>20, "limit_mib", g.limit>>20)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			close(g.over)
		}
	}
}

// groupRSS sums the resident memory of every process by process group.
func groupRSS(pageSize int64) map[int]int64 {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	out := map[int]int64{}
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // it exited meanwhile
		}
		pgrp, pages, ok := parseStat(string(b))
		if ok {
			out[pgrp] += pages * pageSize
		}
	}
	return out
}

// parseStat reads the process group (field 5) and the resident pages (field
// 24) of a /proc/<pid>/stat line. The command name (field 2) is in
// parentheses and may hold spaces and parentheses itself, so the fields are
// counted from the last ')'.
func parseStat(s string) (pgrp int, rssPages int64, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 22 {
		return 0, 0, false
	}
	pgrp, err1 := strconv.Atoi(f[2])
	rssPages, err2 := strconv.ParseInt(f[21], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return pgrp, rssPages, true
}
