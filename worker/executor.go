package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

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

	killOnce sync.Once
	killed   chan struct{} // closed by a kill request
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
}

// run executes the attempt and settles it. Its writes carry the lease, so a
// stale attempt can never overwrite a newer one's status.
func (e *executor) run() {
	defer e.w.jobs.Done()
	defer e.w.forget(e)
	ctx := context.Background() // writes must finish even while the worker stops
	e.log.Info("job claimed", "attempt", e.attempt, "cluster", e.spec.Cluster, "memory_mib", e.spec.Memory)
	e.event(job.Claimed, "", nil)

	end := e.execute(ctx)
	switch {
	case end.handBack:
		_ = e.msg.NakWithDelay(e.w.cfg.HandBack)
		return
	case end.status == "":
		return // stale: another attempt owns the job; leave its message alone
	}
	e.archive(ctx)
	err := e.w.store.Transition(ctx, e.spec.ID, end.status, &e.lease, store.Update{Message: end.message, ExitCode: end.exitCode})
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
	e.archiveRecord(ctx)
	if err := e.msg.DoubleAck(ctx); err != nil {
		e.log.Warn("ack", "error", err)
	}
	if !e.w.cfg.KeepJobDirs {
		if err := os.RemoveAll(e.dir); err != nil {
			e.log.Warn("remove job directory", "error", err)
		}
	}
}

// event announces a status change of this attempt.
func (e *executor) event(st job.Status, msg string, exitCode *int) {
	e.w.broker.PublishEvent(job.Event{ID: e.spec.ID, Status: st, Message: msg, Attempt: e.attempt,
		Worker: e.w.cfg.ID, ExitCode: exitCode, Time: time.Now().UTC()})
}

// transition writes a non-final status under the lease. It returns the ending
// to settle with when the attempt must stop instead.
func (e *executor) transition(ctx context.Context, to job.Status) *ending {
	err := e.w.store.Transition(ctx, e.spec.ID, to, &e.lease, store.Update{})
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

func (e *executor) execute(ctx context.Context) ending {
	if end := e.transition(ctx, job.Init); end != nil {
		return *end
	}
	cmd, files, err := e.prepare()
	if err != nil {
		return ending{status: job.Failed, message: "prepare job directory: " + err.Error()}
	}
	defer files.close()
	select {
	case <-e.killed:
		return ending{status: job.Killed, message: "killed on request"}
	default:
	}
	if err := cmd.Start(); err != nil {
		code := 127
		return ending{status: job.Failed, message: "start: " + err.Error(), exitCode: &code}
	}
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
			return exitEnding(err)
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
			if err := e.msg.InProgress(); err == nil {
				extended = time.Now()
			} else if time.Since(extended) > ackWait {
				// Cut off for longer than the lease: another worker may run
				// the job now, so this attempt stops and writes nothing.
				e.log.Error("lease expired while cut off from NATS; killing the attempt", "error", err)
				e.terminate(pgid, done)
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
	cmd := exec.Command(e.spec.Argv[0], e.spec.Argv[1:]...)
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Pdeathsig: if the worker dies (SIGKILL, OOM), its job dies with it
	// rather than running on unowned while the job's next attempt starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = e.env()
	return cmd, &jobFiles{stdout, stderr}, nil
}

// env is the worker's environment without its own JINN_ settings, then the
// job's (cluster, command and request, merged at resolution), then jinn's.
func (e *executor) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JINN_") {
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

// archive copies the job's directory to the archive. A failure is logged and
// costs the job nothing but its archived output.
func (e *executor) archive(ctx context.Context) {
	if e.w.archive == nil {
		return
	}
	root, err := os.OpenRoot(e.dir)
	if err != nil {
		return // it never got a directory
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return e.w.archive.Put(ctx, store.JobKey(e.spec.ID, p), f)
	})
	if err != nil {
		e.log.Error("archive job directory", "error", err)
	}
}

// archiveRecord stores the final record beside the archived output.
func (e *executor) archiveRecord(ctx context.Context) {
	if e.w.archive == nil {
		return
	}
	j, err := e.w.store.Get(ctx, e.spec.ID)
	if err != nil {
		return
	}
	data, _ := jsonMarshal(j)
	if err := e.w.archive.Put(ctx, store.RecordKey(e.spec.ID), strings.NewReader(string(data))); err != nil {
		e.log.Warn("archive job record", "error", err)
	}
}
