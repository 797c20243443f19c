package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// executor owns one attempt at a job, from its claim to its ack: the job's
// directory, its process group, its lease, its archive and its final status.
// Nothing else touches the process.
type executor struct {
	w       *Worker
	spec    job.Spec
	lease   job.Lease
	attempt int
	msg     jetstream.Msg
	dir     string
	log     hclog.Logger

	memFreed atomic.Bool // its reservation was given back (Worker.freeMemory)
	killOnce sync.Once
	killed   chan struct{} // closed by a kill request
	state    attemptState  // status last written, for recovery (recover.go)
	started  time.Time     // when it became RUNNING; zero before (metrics)
	counted  bool          // in the running-jobs gauge
}

func newExecutor(w *Worker, spec job.Spec, lease job.Lease, msg jetstream.Msg) *executor {
	return &executor{
		w: w, spec: spec, lease: lease, msg: msg,
		dir:    filepath.Join(w.cfg.DataDir, "jobs", spec.ID),
		log:    w.log.With("job", spec.ID),
		killed: make(chan struct{}),
	}
}

// kill asks the executor to end the job as KILLED.
func (e *executor) kill() { e.killOnce.Do(func() { close(e.killed) }) }

// ending says how an attempt ended.
type ending struct {
	status   job.Status // a terminal status, or "" to write nothing
	message  string
	exitCode *int
	handBack bool // give the message back for another worker
	peak     int  // measured peak memory in MiB, 0 when unknown
}

// run executes the attempt and settles it. Its writes carry the lease, so a
// stale attempt can never overwrite a newer one's status.
func (e *executor) run() {
	defer e.w.jobs.Done()
	defer e.w.forget(e)
	defer func() {
		if e.counted { // it ran but did not finish here: handed back or stale
			metrics.JobLeft(e.spec.Cluster, e.spec.Command)
		}
	}()
	ctx := context.Background() // writes must finish even while the worker stops
	e.log.Info("job claimed", "attempt", e.attempt, "cluster", e.spec.Cluster, "memory_mib", e.spec.Memory)
	e.event(job.Claimed, "", nil)

	end := e.execute(ctx)
	// The process group is gone: its memory is free for the next job while
	// this one is archived and settled.
	e.w.freeMemory(e)
	switch {
	case end.handBack:
		_ = e.msg.NakWithDelay(e.w.cfg.HandBack)
		return
	case end.status == "":
		return // stale: another attempt owns the job; leave its message alone
	}
	arch := e.archive(ctx) // files.go
	err := e.write(ctx, end.status, store.Update{Message: end.message, ExitCode: end.exitCode, Peak: end.peak,
		ArchiveStatus: arch.status, ArchiveLocation: arch.location, ArchiveMessage: arch.message})
	if errors.Is(err, store.ErrStale) {
		e.log.Warn("attempt lost its lease before its final status; another attempt owns the job")
		return
	}
	if err != nil {
		e.log.Error("final status not written; handing the job back", "status", end.status, "error", err)
		_ = e.msg.NakWithDelay(e.w.cfg.HandBack)
		return
	}
	e.log.Info("job finished", "status", end.status, "message", end.message)
	e.event(end.status, end.message, end.exitCode)
	if err := e.archiveRecord(ctx); err != nil {
		// The archive is where a finished job lives once Redis forgets it:
		// no ack without it. The next delivery finds the job finished and
		// archives its record (Worker.settled).
		e.log.Error("final record not archived; handing the message back", "error", err)
		_ = e.msg.NakWithDelay(e.w.cfg.HandBack)
		return
	}
	if err := e.msg.DoubleAck(ctx); err != nil {
		e.log.Warn("ack", "error", err)
	}
	e.w.disk.finished(e.dir) // the janitor removes it after its retention
}

// event announces a status change of this attempt.
func (e *executor) event(st job.Status, msg string, exitCode *int) {
	now := time.Now()
	e.w.broker.PublishEvent(job.Event{ID: e.spec.ID, Status: st, Message: msg, Attempt: e.attempt,
		Worker: e.w.cfg.ID, ExitCode: exitCode, Time: now.UTC()})
	e.measure(st, now)
}

// measure records a status change in the job metrics: the queue wait (from
// the publish of the job's message) at RUNNING, the run time at the end.
func (e *executor) measure(st job.Status, now time.Time) {
	switch {
	case st == job.Running:
		e.started, e.counted = now, true
		wait := time.Duration(-1)
		if md, err := e.msg.Metadata(); err == nil {
			wait = max(now.Sub(md.Timestamp), 0)
		}
		metrics.JobStarted(e.spec.Cluster, e.spec.Command, wait)
	case st.Terminal():
		ran := time.Duration(-1)
		if e.counted {
			ran, e.counted = now.Sub(e.started), false
		}
		metrics.JobFinished(e.spec.Cluster, e.spec.Command, string(st), ran)
	}
}

// transition writes a non-final status under the lease. It returns the ending
// to settle with when the attempt must stop instead.
func (e *executor) transition(ctx context.Context, to job.Status) *ending {
	err := e.write(ctx, to, store.Update{})
	switch {
	case err == nil:
		e.event(to, "", nil)
		return nil
	case errors.Is(err, store.ErrKillRequested):
		return &ending{status: job.Killed, message: "killed on request"}
	case errors.Is(err, store.ErrStale):
		e.log.Warn("lease lost; abandoning the attempt", "to", to)
		return &ending{}
	default:
		e.log.Error("status write failed; handing the job back", "to", to, "error", err)
		return &ending{handBack: true}
	}
}

func (e *executor) execute(ctx context.Context) (out ending) {
	if end := e.transition(ctx, job.Init); end != nil {
		return *end
	}
	cmd, files, err := e.prepare()
	if err != nil {
		return ending{status: job.Failed, message: "prepare job directory: " + err.Error()}
	}
	defer files.close()
	if end := e.setUp(ctx); end != nil { // fetch files, write the run script (files.go)
		return *end
	}
	select {
	case <-e.killed:
		return ending{status: job.Killed, message: "killed on request"}
	default:
	}
	dm, err := newDeadMan(cmd, beatTimeout(e.w.broker.AckWait())) // deadman.go
	if err != nil {
		return ending{status: job.Failed, message: "prepare: " + err.Error()}
	}
	// Runs last, after the process group is killed: a closed pipe would make
	// the watcher kill it.
	defer dm.close()
	mem, err := e.w.enforcer.start(e.spec.ID, e.spec.Memory, cmd) // cgroup.go
	if err != nil {
		code := 127
		return ending{status: job.Failed, message: "start: " + err.Error(), exitCode: &code}
	}
	dm.beat()
	// After the process group is killed (the defer below runs first): the
	// peak, the cgroup's cleanup, and the verdict on the job's memory.
	defer func() { out = e.settleMemory(mem, out) }()
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Whatever happens, nothing of the job survives it.
	defer func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }()

	if end := e.transition(ctx, job.Running); end != nil {
		e.terminate(pgid, done)
		return *end
	}
	return e.supervise(pgid, done)
}

// supervise waits for the process while extending the lease, and ends it on
// a kill request, a timeout, a lost lease or a hard stop of the worker.
func (e *executor) supervise(pgid int, done chan error) ending {
	var timeout <-chan time.Time
	if e.spec.Timeout > 0 {
		t := time.NewTimer(time.Duration(e.spec.Timeout) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	ackWait := e.w.broker.AckWait()
	extend := time.NewTicker(ackWait / 3)
	defer extend.Stop()
	extended := time.Now()
	for {
		select {
		case err := <-done:
			return e.exited(err)
		case <-e.killed:
			e.terminate(pgid, done)
			return ending{status: job.Killed, message: "killed on request"}
		case <-timeout:
			e.terminate(pgid, done)
			return ending{status: job.TimedOut, message: fmt.Sprintf("timed out after %ds", e.spec.Timeout)}
		case <-e.w.hardCtx.Done():
			e.terminate(pgid, done)
			return ending{handBack: true}
		case <-extend.C:
			if !e.keepLease(&extended, ackWait) {
				// Another worker may run the job now (or soon): this attempt
				// stops at once, without a grace period, and writes nothing.
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-done
				return ending{}
			}
		}
	}
}

// terminate sends SIGTERM to the job's process group, SIGKILL after the
// grace period, and waits for the process to exit.
func (e *executor) terminate(pgid int, done chan error) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(e.w.cfg.KillGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

func exitEnding(err error) ending {
	if err == nil {
		code := 0
		return ending{status: job.Succeeded, exitCode: &code}
	}
	var xe *exec.ExitError
	if !errors.As(err, &xe) {
		return ending{status: job.Failed, message: "wait: " + err.Error()}
	}
	if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code := 128 + int(ws.Signal())
		return ending{status: job.Failed, message: "killed by signal " + ws.Signal().String(), exitCode: &code}
	}
	code := xe.ExitCode()
	return ending{status: job.Failed, message: "exit code " + strconv.Itoa(code), exitCode: &code}
}

type jobFiles struct{ stdout, stderr *os.File }

func (f *jobFiles) close() {
	f.stdout.Close()
	f.stderr.Close()
}

// prepare makes the job's directory and its command, in a process group of
// its own so that a kill reaches every process it spawned.
func (e *executor) prepare() (*exec.Cmd, *jobFiles, error) {
	if len(e.spec.Argv) == 0 {
		return nil, nil, errors.New("nothing to run: the command and the args are both empty")
	}
	// A fresh directory: nothing an earlier attempt left (or planted) stays.
	if err := os.RemoveAll(e.dir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return nil, nil, err
	}
	stdout, err := os.Create(filepath.Join(e.dir, "stdout"))
	if err != nil {
		return nil, nil, err
	}
	stderr, err := os.Create(filepath.Join(e.dir, "stderr"))
	if err != nil {
		stdout.Close()
		return nil, nil, err
	}
	// The run script (runscript.go) sets up the environment and execs the
	// command: the same process, group and cgroup.
	cmd := exec.Command("bash", filepath.Join(e.dir, "run"))
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Pdeathsig: if the worker dies (SIGKILL, OOM), its job dies with it
	// rather than running on unowned while the job's next attempt starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = e.env()
	return cmd, &jobFiles{stdout, stderr}, nil
}

// workerSecret reports whether an inherited variable belongs to the worker
// alone: its own JINN_ settings, and the static AWS credentials it reaches
// the archive with. A job that needs AWS gets its credentials from its
// cluster, command or request env, or from the instance's role.
func workerSecret(kv string) bool {
	for _, p := range []string{"JINN_", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN="} {
		if strings.HasPrefix(kv, p) {
			return true
		}
	}
	return false
}

// env is the worker's environment without its own settings (workerSecret), then the
// job's (cluster, command and request, merged at resolution), then jinn's.
func (e *executor) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !workerSecret(kv) {
			env = append(env, kv)
		}
	}
	for k, v := range e.spec.Env {
		env = append(env, k+"="+v)
	}
	return append(env,
		"JINN_JOB_ID="+e.spec.ID,
		"JINN_JOB_DIR="+e.dir,
		"JINN_CLUSTER="+e.spec.Cluster,
		"JINN_COMMAND="+e.spec.Command,
		"JINN_ATTEMPT="+strconv.Itoa(e.attempt),
		"JINN_WORKER="+e.w.cfg.ID,
		"JINN_JOB_MEMORY="+strconv.Itoa(e.spec.Memory),
	)
}

// archiveRecord stores the final record beside the archived output.
func (e *executor) archiveRecord(ctx context.Context) error {
	if e.w.archive == nil {
		return nil
	}
	return retry(ctx, 3, func() error {
		j, err := e.finalRecord(ctx) // recover.go
		if err != nil {
			return err
		}
		return e.w.putRecord(ctx, j)
	})
}
