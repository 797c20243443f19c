package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/job"
)

// Memory enforcement holds each job to the memory it reserved. The ledger
// decides what fits; this makes it true. In order of preference:
//
//   - cgroup v2: a cgroup per job with memory.max, memory.swap.max 0 and
//     memory.oom.group 1; the child is born inside it (clone3 with
//     CLONE_INTO_CGROUP, Go's SysProcAttr.UseCgroupFD), so nothing it
//     allocates is ever counted elsewhere, and an OOM kill takes the whole job.
//   - cgroup v1: a cgroup per job in the memory hierarchy with
//     memory.limit_in_bytes (and memory.memsw.limit_in_bytes where swap is
//     accounted). v1 has no CLONE_INTO_CGROUP, so the worker starts the child
//     from an OS thread it has moved into the job's cgroup (v1 places threads
//     one by one): the child is born inside too, and the thread moves back.
//     The worker polls the OOM-kill counter and kills the rest of the job when
//     the kernel has killed a part of it, as oom.group does in v2.
//   - the watchdog: polls the RSS of the job's process group and kills the
//     group when the sum passes the job's memory (watchdog.go). It can miss a
//     spike shorter than its interval and does not see processes that leave
//     the group; it is the fallback where the worker cannot make cgroups.
//
// A job over its memory ends FAILED with "memory limit exceeded (N MiB)", and
// every job's measured peak is recorded on it.

// Enforcement modes, Config.Enforce.
const (
	EnforceAuto     = "auto"     // cgroup v2, else v1, else the watchdog
	EnforceCgroup   = "cgroup"   // cgroup v2 or v1; the worker does not start without one
	EnforceWatchdog = "watchdog" // the RSS watchdog only
	EnforceOff      = "off"      // memory is reserved but not enforced; the peak is not measured
)

// EnforceModes lists the valid values of Config.Enforce.
var EnforceModes = []string{EnforceAuto, EnforceCgroup, EnforceWatchdog, EnforceOff}

// enforcer starts jobs held to their memory. A worker has one.
type enforcer interface {
	// start starts cmd held to mib MiB. The job's id names its cgroup.
	start(id string, mib int, cmd *exec.Cmd) (memoryLimit, error)
	// kind names the mechanism, for logs and the heartbeat.
	kind() string
	// used is the memory the worker's jobs use now, as measured, in MiB; 0
	// when not measured. The heartbeat carries it to the autoscaler.
	used() int
	// close removes what the enforcer made for the worker.
	close()
}

// memoryLimit is one job's enforcement, from its start to its cleanup. A
// job that goes over its memory is killed by the enforcement itself (the
// kernel, the v1 poll, the watchdog); the executor sees its process exit.
type memoryLimit interface {
	// finish is called once the job's main process has exited and its
	// process group was killed. It kills whatever else is left of the job,
	// and returns the measured peak in MiB (0 when unknown) and whether the
	// job went over its memory. It removes the job's cgroup.
	finish() (peakMiB int, over bool)
}

// memoryExceeded is the message of a job that went over its memory.
func memoryExceeded(mib int) string { return fmt.Sprintf("memory limit exceeded (%d MiB)", mib) }

// settleMemory runs once the job's process group is dead: it measures the
// peak, removes the job's cgroup, and turns the ending of a job that went
// over its memory into FAILED with that reason. A kill, a timeout or a hand
// back that happened first stays what it was.
func (e *executor) settleMemory(lim memoryLimit, end ending) ending {
	peak, over := lim.finish()
	end.peak = peak
	if over && (end.status == job.Succeeded || end.status == job.Failed) {
		e.log.Warn("job went over its memory", "memory_mib", e.spec.Memory, "peak_mib", peak, "enforcer", e.w.enforcer.kind())
		end.status = job.Failed
		end.message = memoryExceeded(e.spec.Memory)
	}
	return end
}

// newEnforcer picks the enforcement of mode on this host. poll is how often
// limits are checked (the watchdog's interval, the v1 OOM-kill poll).
func newEnforcer(mode, workerID string, poll time.Duration, log hclog.Logger) (enforcer, error) {
	switch mode {
	case EnforceOff:
		return noEnforcer{}, nil
	case EnforceWatchdog:
		return newWatchdog(poll, log), nil
	case EnforceAuto, EnforceCgroup, "":
	default:
		return nil, fmt.Errorf("enforce %q: use one of %s", mode, strings.Join(EnforceModes, ", "))
	}
	h := hostCgroups()
	var why []string
	if h.v2 != "" {
		cg, err := prepareV2(h, workerID, poll, log)
		if err == nil {
			return cg, nil
		}
		why = append(why, "cgroup v2: "+err.Error())
	} else {
		why = append(why, "cgroup v2: no unified hierarchy is mounted")
	}
	if h.v1Memory != "" {
		cg, err := prepareV1(h, workerID, poll, log)
		if err == nil {
			return cg, nil
		}
		why = append(why, "cgroup v1: "+err.Error())
	} else {
		why = append(why, "cgroup v1: no memory hierarchy is mounted")
	}
	if mode == EnforceCgroup {
		return nil, fmt.Errorf("--enforce=cgroup: this worker cannot make a cgroup per job (%s); run it as root or in a cgroup delegated to it, or use --enforce=watchdog", strings.Join(why, "; "))
	}
	log.Warn("no cgroup per job on this host: memory is enforced by the RSS watchdog", "why", strings.Join(why, "; "))
	return newWatchdog(poll, log), nil
}

// Enforcement names how this worker holds jobs to their memory:
// cgroup-v2, cgroup-v1, watchdog or off.
func (w *Worker) Enforcement() string { return w.enforcer.kind() }

// noEnforcer starts jobs without a limit.
type noEnforcer struct{}

func (noEnforcer) start(_ string, _ int, cmd *exec.Cmd) (memoryLimit, error) {
	return noLimit{}, cmd.Start()
}
func (noEnforcer) kind() string { return EnforceOff }
func (noEnforcer) used() int    { return 0 }
func (noEnforcer) close()       {}

type noLimit struct{}

func (noLimit) finish() (int, bool) { return 0, false }

// v2Leaf is the cgroup a v2 worker moves itself into, so that its own
// cgroup may delegate the memory controller to the jobs' cgroups (v2 lets
// a cgroup with processes in it do that only at the root).
const v2Leaf = "jinn-self"

// cgroupEnforcer makes a cgroup per job under parent, a cgroup of the
// worker's own: <worker's cgroup>/jinn-<pid>-<n>-<worker id>/<job id>. The
// process id and a counter keep apart workers that share an id and a
// cgroup (several fleets in one test binary, or in two at once); the
// process id lets a worker tell the leftovers of a process that died.
type cgroupEnforcer struct {
	v2     bool
	parent string
	own    string // the worker's own cgroup (v1: where its threads return)
	poll   time.Duration
	log    hclog.Logger
}

func (c *cgroupEnforcer) kind() string {
	if c.v2 {
		return "cgroup-v2"
	}
	return "cgroup-v1"
}

var v2Mu sync.Mutex // the leaf move and subtree_control writes of workers in one process

// prepareV2 makes the worker's parent cgroup in the unified hierarchy with
// the memory controller enabled for its children.
func prepareV2(h cgroupHost, workerID string, poll time.Duration, log hclog.Logger) (*cgroupEnforcer, error) {
	v2Mu.Lock()
	defer v2Mu.Unlock()
	own := h.v2
	if !slices.Contains(readWords(filepath.Join(own, "cgroup.controllers")), "memory") {
		return nil, fmt.Errorf("the memory controller is not available in %s", own)
	}
	if !slices.Contains(readWords(filepath.Join(own, "cgroup.subtree_control")), "memory") {
		// A cgroup with processes cannot hand controllers to its children
		// (except the root): move this process into a leaf first.
		if own != h.v2Mount {
			leaf := filepath.Join(own, v2Leaf)
			if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, err
			}
			if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
				return nil, fmt.Errorf("move the worker into %s: %w", leaf, err)
			}
		}
		if err := writeFile(filepath.Join(own, "cgroup.subtree_control"), "+memory"); err != nil {
			return nil, fmt.Errorf("enable memory for the children of %s (other processes in it?): %w", own, err)
		}
	}
	parent := filepath.Join(own, parentName(workerID))
	if err := makeParent(parent, log); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(parent, "cgroup.subtree_control"), "+memory"); err != nil {
		_ = os.Remove(parent)
		return nil, fmt.Errorf("enable memory for the children of %s: %w", parent, err)
	}
	return &cgroupEnforcer{v2: true, parent: parent, own: own, poll: poll, log: log}, nil
}

// prepareV1 makes the worker's parent cgroup in the v1 memory hierarchy.
func prepareV1(h cgroupHost, workerID string, poll time.Duration, log hclog.Logger) (*cgroupEnforcer, error) {
	parent := filepath.Join(h.v1Memory, parentName(workerID))
	if err := makeParent(parent, log); err != nil {
		return nil, err
	}
	return &cgroupEnforcer{parent: parent, own: h.v1Memory, poll: poll, log: log}, nil
}

var parents atomic.Int64

// parentName names a worker's parent cgroup: jinn-<pid>-<n>-<worker id>.
func parentName(workerID string) string {
	return fmt.Sprintf("jinn-%d-%d-%s", os.Getpid(), parents.Add(1), workerID)
}

// makeParent creates a worker's parent cgroup, after removing the parents
// that workers of processes no longer running left beside it (a worker
// that crashed): their jobs are killed, as they were handed on when their
// worker's lease ran out.
func makeParent(parent string, log hclog.Logger) error {
	entries, _ := os.ReadDir(filepath.Dir(parent))
	for _, e := range entries {
		var pid, n int
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "jinn-") {
			continue
		}
		if _, err := fmt.Sscanf(e.Name(), "jinn-%d-%d-", &pid, &n); err != nil || pid <= 0 || processExists(pid) {
			continue
		}
		old := filepath.Join(filepath.Dir(parent), e.Name())
		jobs, _ := os.ReadDir(old)
		for _, j := range jobs {
			if j.IsDir() {
				dir := filepath.Join(old, j.Name())
				log.Warn("removing the cgroup of a job left by a worker that died", "cgroup", dir)
				killCgroup(dir)
				if err := removeCgroup(dir); err != nil {
					log.Warn("stale job cgroup not removed", "cgroup", dir, "error", err)
				}
			}
		}
		_ = os.Remove(old)
	}
	if err := os.Mkdir(parent, 0o755); err != nil {
		return err
	}
	// A probe: the hierarchy may be mounted read-only or belong to someone else.
	probe := filepath.Join(parent, "cgroup.procs")
	if _, err := os.Stat(probe); err != nil {
		_ = os.Remove(parent)
		return fmt.Errorf("%s is not a cgroup: %w", parent, err)
	}
	return nil
}

// processExists reports whether a process with this id runs (or is a zombie).
func processExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// used reads the worker's parent cgroup, which counts all of its jobs
// (v1 with memory.use_hierarchy, as v2 always does).
func (c *cgroupEnforcer) used() int {
	file := "memory.usage_in_bytes"
	if c.v2 {
		file = "memory.current"
	}
	return int(readInt(filepath.Join(c.parent, file)) >> 20)
}

func (c *cgroupEnforcer) close() {
	if err := os.Remove(c.parent); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Debug("worker cgroup not removed", "cgroup", c.parent, "error", err)
	}
}

func (c *cgroupEnforcer) start(id string, mib int, cmd *exec.Cmd) (memoryLimit, error) {
	if mib <= 0 { // a message from before memory was part of a job: no limit
		return noEnforcer{}.start(id, mib, cmd)
	}
	dir := filepath.Join(c.parent, id)
	if _, err := os.Stat(dir); err == nil {
		// Left by an earlier attempt on this worker: its counters would lie.
		killCgroup(dir)
		if err := removeCgroup(dir); err != nil {
			return nil, fmt.Errorf("remove the cgroup of an earlier attempt: %w", err)
		}
	}
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrNotExist) { // someone removed the worker's cgroup
		if err = os.Mkdir(c.parent, 0o755); err == nil && c.v2 {
			err = writeFile(filepath.Join(c.parent, "cgroup.subtree_control"), "+memory")
		}
		if err == nil {
			err = os.Mkdir(dir, 0o755)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("make the job's cgroup: %w", err)
	}
	fail := func(err error) (memoryLimit, error) {
		_ = os.Remove(dir)
		return nil, err
	}
	bytes := strconv.FormatInt(int64(mib)<<20, 10)
	if c.v2 {
		if err := writeFile(filepath.Join(dir, "memory.max"), bytes); err != nil {
			return fail(fmt.Errorf("set memory.max: %w", err))
		}
		_ = writeFile(filepath.Join(dir, "memory.swap.max"), "0") // absent without swap accounting
		if err := writeFile(filepath.Join(dir, "memory.oom.group"), "1"); err != nil {
			c.log.Debug("memory.oom.group not set; the worker kills the rest of the job itself", "error", err)
		}
		if err := startInCgroupV2(dir, cmd); err != nil {
			return fail(err)
		}
	} else {
		if err := writeFile(filepath.Join(dir, "memory.limit_in_bytes"), bytes); err != nil {
			return fail(fmt.Errorf("set memory.limit_in_bytes: %w", err))
		}
		// Memory plus swap: no more than the memory itself, so a job cannot
		// grow past its limit into swap. Absent without swap accounting.
		if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
			if err := writeFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), bytes); err != nil {
				c.log.Debug("memory.memsw.limit_in_bytes not set", "error", err)
			}
		}
		if err := startInCgroupV1(filepath.Join(dir, "tasks"), filepath.Join(c.own, "tasks"), cmd); err != nil {
			return fail(err)
		}
	}
	l := &cgroupLimit{dir: dir, v2: c.v2, over: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch(c.poll)
	return l, nil
}

// startInCgroupV2 starts cmd born inside the cgroup dir.
func startInCgroupV2(dir string, cmd *exec.Cmd) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the job's cgroup: %w", err)
	}
	defer syscall.Close(fd)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = fd
	return cmd.Start()
}

// startInCgroupV1 starts cmd from an OS thread moved into the job's cgroup
// (its tasks file), so that the child is born inside it; the thread then
// moves back to the worker's cgroup (ownTasks).
//
// The thread is never the process's main thread: the kernel charges a
// process's memory to the cgroup of its thread-group leader, so moving the
// leader would charge the worker's own allocations to the job meanwhile.
func startInCgroupV1(jobTasks, ownTasks string, cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go startOnThread(jobTasks, ownTasks, cmd, errc)
	return <-errc
}

func startOnThread(jobTasks, ownTasks string, cmd *exec.Cmd, errc chan<- error) {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	if tid == syscall.Getpid() {
		// Hold the main thread, so that the goroutine below runs on another.
		inner := make(chan error, 1)
		go startOnThread(jobTasks, ownTasks, cmd, inner)
		err := <-inner
		runtime.UnlockOSThread()
		errc <- err
		return
	}
	if err := writeFile(jobTasks, strconv.Itoa(tid)); err != nil {
		runtime.UnlockOSThread()
		errc <- fmt.Errorf("move into the job's cgroup: %w", err)
		return
	}
	err := cmd.Start() // forks on this thread: the child is born in the job's cgroup
	if werr := writeFile(ownTasks, strconv.Itoa(tid)); werr == nil {
		runtime.UnlockOSThread()
	}
	// Otherwise the thread stays locked: the runtime ends it with this
	// goroutine instead of running the worker on it from the job's cgroup.
	errc <- err
}

// cgroupLimit is one job's cgroup.
type cgroupLimit struct {
	dir  string
	v2   bool
	over chan struct{} // closed when the kernel OOM-killed a part of the job (tests wait on it)
	stop chan struct{}
	done chan struct{}
}

// oomKills is how many processes of the job the kernel killed for memory.
func (l *cgroupLimit) oomKills() int64 {
	if l.v2 {
		return readKeyed(filepath.Join(l.dir, "memory.events"), "oom_kill")
	}
	return readKeyed(filepath.Join(l.dir, "memory.oom_control"), "oom_kill")
}

// watch polls the OOM-kill counter. The kernel kills one process (v1, or v2
// without oom.group) and the job might go on without it; the worker then
// kills the whole job, as oom.group does, since it went over its memory.
func (l *cgroupLimit) watch(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if l.oomKills() > 0 {
				killCgroup(l.dir)
				close(l.over)
				return
			}
		case <-l.stop:
			return
		}
	}
}

func (l *cgroupLimit) finish() (int, bool) {
	close(l.stop)
	<-l.done
	killCgroup(l.dir)
	var peak int64
	if l.v2 {
		peak = readInt(filepath.Join(l.dir, "memory.peak")) // Linux 5.19 and later
	} else {
		peak = readInt(filepath.Join(l.dir, "memory.max_usage_in_bytes"))
	}
	over := l.oomKills() > 0
	_ = removeCgroup(l.dir)
	return int((peak + 1<<20 - 1) >> 20), over
}

// killCgroup kills every process in cgroup dir and waits (a little) until
// it is empty: what a job left behind, even outside its process group.
func killCgroup(dir string) {
	if writeFile(filepath.Join(dir, "cgroup.kill"), "1") == nil { // v2, Linux 5.14 and later
		for i := 0; i < 200 && readKeyed(filepath.Join(dir, "cgroup.events"), "populated") == 1; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		return
	}
	for i := 0; i < 200; i++ {
		pids := readWords(filepath.Join(dir, "cgroup.procs"))
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			// Never the worker: it is listed if one of its threads were left
			// in the job's cgroup (startInCgroupV1 prevents that).
			if pid, err := strconv.Atoi(p); err == nil && pid > 0 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if len(pids) == 1 && pids[0] == strconv.Itoa(os.Getpid()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// removeCgroup removes an empty cgroup, retrying while its last processes
// are being reaped.
func removeCgroup(dir string) error {
	var err error
	for i := 0; i < 100; i++ {
		if err = os.Remove(dir); err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

func writeFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readWords(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}
