package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Config of a worker. Zero fields take the defaults documented beside them.
type Config struct {
	// ID names the worker in subjects and keys. Default: host name and a
	// random suffix.
	ID string
	// Pool the worker belongs to. Default "default".
	Pool string
	// Clusters it serves; "*" (the default) serves every cluster that is not
	// TERMINATED, following the registry as clusters come and go.
	Clusters []string
	// Allowance is the memory (MiB) it gives to jobs. Default 80% of the
	// machine's memory.
	Allowance int
	// DataDir holds the job directories, <data>/jobs/<id>/. Required.
	DataDir string
	// KeepJobDirs keeps a job's local directory after it was archived,
	// until the disk is short (see Files.JobDirRetention otherwise).
	KeepJobDirs bool
	// Files: fetching, caching and archiving job files, and cleaning job
	// directories (janitor.go).
	Files FilesConfig
	// Heartbeat is how often the worker publishes its state; it is presumed
	// dead after three missed beats. Default 2s.
	Heartbeat time.Duration
	// KillGrace is how long a killed job's process group has between SIGTERM
	// and SIGKILL. Default 10s.
	KillGrace time.Duration
	// HandBack is how long a job the worker cannot take now waits before it
	// is offered again. Default 1s.
	HandBack time.Duration
	// PollWait bounds one pull request. Default 5s.
	PollWait time.Duration
	// ReserveAfter is how long a job may wait in its queue before a worker
	// that hands it back keeps room for it, admitting smaller jobs only
	// beside it, so that a large job is not starved by small ones.
	// Default 1m.
	ReserveAfter time.Duration
	// Enforce is how a job is held to its memory: auto (the default: a
	// cgroup per job, v2 or v1, else the RSS watchdog), cgroup, watchdog or
	// off. See cgroup.go.
	Enforce string
	// MemoryPoll is the interval of the RSS watchdog and of the cgroup v1
	// OOM-kill check. Default 250ms.
	MemoryPoll time.Duration
	// Version is reported in the heartbeat.
	Version string
}

func (c *Config) defaults() error {
	if c.ID == "" {
		c.ID = DefaultID()
	}
	if err := job.ValidateName("worker id", c.ID); err != nil {
		return err
	}
	if c.Pool == "" {
		c.Pool = "default"
	}
	if err := job.ValidateName("pool", c.Pool); err != nil {
		return err
	}
	if len(c.Clusters) == 0 {
		c.Clusters = []string{"*"}
	}
	for _, cl := range c.Clusters {
		if cl != "*" {
			if err := job.ValidateName("cluster", cl); err != nil {
				return err
			}
		}
	}
	if c.Allowance <= 0 {
		c.Allowance = DefaultAllowance()
	}
	if c.DataDir == "" {
		return errors.New("worker: a data directory is required")
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 2 * time.Second
	}
	if c.KillGrace <= 0 {
		c.KillGrace = 10 * time.Second
	}
	if c.HandBack <= 0 {
		c.HandBack = time.Second
	}
	if c.PollWait <= 0 {
		c.PollWait = 5 * time.Second
	}
	if c.ReserveAfter <= 0 {
		c.ReserveAfter = time.Minute
	}
	if c.Enforce == "" {
		c.Enforce = EnforceAuto
	}
	if c.MemoryPoll <= 0 {
		c.MemoryPoll = 250 * time.Millisecond
	}
	return nil
}

var notName = regexp.MustCompile(`[^a-z0-9_-]+`)

// DefaultID is the host name, made a valid name, with a random suffix.
func DefaultID() string {
	host, _ := os.Hostname()
	host = strings.Trim(notName.ReplaceAllString(strings.ToLower(host), "-"), "-_")
	if len(host) > 40 {
		host = host[:40]
	}
	if host == "" {
		host = "worker"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// newIncarnation is a random name for one run of a worker.
func newIncarnation() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Worker pulls and runs jobs. Start it, then Drain or Stop it.
type Worker struct {
	cfg      Config
	broker   *broker.Broker
	store    *store.Store
	registry *store.Registry
	archive  store.Archive
	disk     *disk // the file cache and the job directories (janitor.go)
	log      hclog.Logger
	ledger   *ledger
	enforcer enforcer     // holds each job to its memory (cgroup.go)
	refused  atomic.Int64 // jobs handed back for want of memory
	started  time.Time

	mu        sync.Mutex
	running   map[string]*executor // by job id
	consumers map[string]context.CancelFunc

	jobs    sync.WaitGroup // running executors
	loops   sync.WaitGroup // pull loops, heartbeat
	ctx     context.Context
	cancel  context.CancelFunc // stops pulling and heartbeats
	hard    context.CancelFunc // kills running jobs and hands them back
	hardCtx context.Context
	subs    []*nats.Subscription
	done    chan struct{}
	// incarnation names this run of the worker; see job.Worker.Incarnation.
	incarnation string
	once        sync.Once
}

// Deps are the parts a worker uses.
type Deps struct {
	Broker   *broker.Broker
	Store    *store.Store
	Registry *store.Registry
	Archive  store.Archive
	// URIs reads the files jobs need (s3://, file://); nil: jobs with
	// files fail with a message that says so.
	URIs *store.URIs
	Log  hclog.Logger
}

// New returns a worker; Start runs it.
func New(cfg Config, d Deps) (*Worker, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "jobs"), 0o755); err != nil {
		return nil, fmt.Errorf("worker data directory: %w", err)
	}
	log := d.Log.Named("worker").With("worker", cfg.ID)
	enf, err := newEnforcer(cfg.Enforce, cfg.ID, cfg.MemoryPoll, log)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", cfg.ID, err)
	}
	w := &Worker{
		cfg: cfg, broker: d.Broker, store: d.Store, registry: d.Registry, archive: d.Archive,
		log:         log,
		ledger:      newLedger(cfg.Allowance),
		enforcer:    enf,
		running:     map[string]*executor{},
		consumers:   map[string]context.CancelFunc{},
		done:        make(chan struct{}),
		incarnation: newIncarnation(),
	}
	if w.disk, err = newDisk(cfg.DataDir, cfg.Files, cfg.KeepJobDirs, d.URIs, func(id string) bool { return w.executor(id) != nil }, log); err != nil {
		return nil, fmt.Errorf("worker %s: %w", cfg.ID, err)
	}
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Start answers control requests, begins heartbeats and pulls jobs.
func (w *Worker) Start(ctx context.Context) error {
	w.started = time.Now()
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.hardCtx, w.hard = context.WithCancel(context.WithoutCancel(ctx))
	for verb, fn := range map[string]func(broker.ControlRequest) broker.ControlReply{
		broker.VerbKill:   w.answerKill,
		broker.VerbOutput: w.answerOutput,
		broker.VerbDrain:  w.answerDrain,
	} {
		sub, err := w.broker.Serve(w.cfg.ID, verb, fn)
		if err != nil {
			return fmt.Errorf("worker %s: serve %s: %w", w.cfg.ID, verb, err)
		}
		w.subs = append(w.subs, sub)
	}
	if err := w.follow(); err != nil {
		return err
	}
	if err := w.beat(ctx); err != nil {
		return err
	}
	w.loops.Add(1)
	go w.heartbeats()
	w.loops.Add(1)
	go func() {
		defer w.loops.Done()
		w.disk.run(w.ctx)
	}()
	if slices.Contains(w.cfg.Clusters, "*") && w.registry != nil {
		w.registry.OnChange(func() {
			if err := w.follow(); err != nil {
				w.log.Warn("follow clusters", "error", err)
			}
		})
	}
	w.log.Info("worker started", "pool", w.cfg.Pool, "allowance_mib", w.cfg.Allowance, "enforce", w.enforcer.kind(), "clusters", strings.Join(w.cfg.Clusters, ","))
	return nil
}

// served returns the clusters the worker pulls for now.
func (w *Worker) served() []string {
	if !slices.Contains(w.cfg.Clusters, "*") || w.registry == nil {
		return slices.DeleteFunc(slices.Clone(w.cfg.Clusters), func(c string) bool { return c == "*" })
	}
	var out []string
	for _, c := range w.registry.Clusters() {
		if c.Status != job.ClusterTerminated {
			out = append(out, c.Name)
		}
	}
	return out
}

// follow starts a pull loop for every served cluster without one and stops
// those of clusters no longer served.
func (w *Worker) follow() error {
	want := w.served()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx.Err() != nil {
		return nil
	}
	for name, stop := range w.consumers {
		if !slices.Contains(want, name) {
			stop()
			delete(w.consumers, name)
		}
	}
	for _, name := range want {
		if _, ok := w.consumers[name]; ok {
			continue
		}
		cons, err := w.broker.JobConsumer(w.ctx, name)
		if err != nil {
			return err
		}
		ctx, stop := context.WithCancel(w.ctx)
		w.consumers[name] = stop
		w.loops.Add(1)
		go w.pull(ctx, name, cons)
	}
	return nil
}

// pull fetches one job at a time from a cluster's consumer, and only while
// the ledger says a job could fit: the worker never holds a message it
// cannot run.
func (w *Worker) pull(ctx context.Context, cluster string, cons jetstream.Consumer) {
	defer w.loops.Done()
	backoff := 100 * time.Millisecond
	for {
		ok, changed := w.ledger.canFetch()
		if !ok {
			if !w.awaitRoom(ctx, changed) {
				return
			}
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, w.cfg.PollWait)
		handedBack := false
		batch, err := cons.Fetch(1, jetstream.FetchContext(fctx))
		if err == nil {
			for msg := range batch.Messages() {
				handedBack = w.admit(msg) || handedBack
			}
			err = batch.Error()
		}
		cancel()
		if ctx.Err() != nil || (handedBack && !w.pace(ctx, changed)) {
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			w.log.Warn("pull jobs", "cluster", cluster, "error", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// admit decides what to do with one delivered job: run it, hand it back, or
// drop it because it is already settled. It reports whether it handed the
// job back for want of memory.
func (w *Worker) admit(msg jetstream.Msg) (handedBack bool) {
	var spec job.Spec
	if err := json.Unmarshal(msg.Data(), &spec); err != nil || job.ValidateID("id", spec.ID) != nil {
		w.log.Error("dropping a malformed job message", "subject", msg.Subject(), "error", err)
		_ = msg.Term()
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		w.log.Error("job message without metadata", "job", spec.ID, "error", err)
		_ = msg.Nak()
		return
	}
	lease := job.Lease{Seq: md.Sequence.Stream, Delivery: md.NumDelivered}
	log := w.log.With("job", spec.ID)
	if !w.ledger.reserve(spec.ID, spec.Memory) {
		// Not an attempt: the job goes back for a worker with room.
		w.handBack(msg, &spec, md.Timestamp)
		return true
	}
	e := newExecutor(w, spec, lease, msg)
	w.mu.Lock()
	if _, dup := w.running[spec.ID]; dup {
		w.mu.Unlock()
		w.ledger.release(spec.Memory)
		_ = msg.NakWithDelay(w.broker.AckWait())
		return
	}
	w.running[spec.ID] = e // registered before the claim, so a kill finds it
	w.mu.Unlock()

	outcome, attempt, err := w.store.ClaimAs(w.ctx, spec.ID, w.cfg.ID, w.incarnation, lease)
	if err == nil && outcome == store.ClaimMissing {
		// Redis lost the job's record (it restarted empty). The message is
		// the system of record: re-record the job from it, then claim it.
		if _, err = w.store.Restore(w.ctx, queuedRecovery(&spec, md.Timestamp)); err == nil {
			log.Warn("job had no record in Redis; re-recorded it from its message")
			outcome, attempt, err = w.store.ClaimAs(w.ctx, spec.ID, w.cfg.ID, w.incarnation, lease)
		}
	}
	if err != nil {
		log.Error("claim failed; handing the job back", "error", err)
		w.forget(e)
		_ = msg.NakWithDelay(w.cfg.HandBack)
		return
	}
	switch outcome {
	case store.ClaimOK:
		e.attempt = attempt
		e.state.set(job.Claimed, store.Update{})
		w.jobs.Add(1)
		go e.run()
		return
	case store.ClaimTerminal:
		log.Debug("job already finished; dropping its message")
		w.settled(msg, spec.ID)
	case store.ClaimKilled, store.ClaimLost:
		log.Info("job settled at claim", "outcome", outcome)
		st := map[store.ClaimOutcome]job.Status{store.ClaimKilled: job.Killed, store.ClaimLost: job.Lost}[outcome]
		w.broker.PublishEvent(job.Event{ID: spec.ID, Status: st, Attempt: attempt, Time: time.Now().UTC()})
		metrics.JobFinished(spec.Cluster, spec.Command, string(st), -1)
		_ = msg.Ack()
	case store.ClaimBusy:
		_ = msg.NakWithDelay(w.broker.AckWait())
	case store.ClaimMissing:
		log.Warn("job has no record in Redis; handing it back")
		_ = msg.NakWithDelay(5 * time.Second)
	}
	w.forget(e)
	return false
}

// forget unregisters an executor and releases its memory.
func (w *Worker) forget(e *executor) {
	w.mu.Lock()
	if w.running[e.spec.ID] == e {
		delete(w.running, e.spec.ID)
	}
	w.mu.Unlock()
	w.freeMemory(e)
}

// freeMemory gives an executor's reservation back to the ledger, once.
func (w *Worker) freeMemory(e *executor) {
	if e.memFreed.CompareAndSwap(false, true) {
		w.ledger.release(e.spec.Memory)
	}
}

func (w *Worker) executor(id string) *executor {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running[id]
}

// Drain stops pulling; running jobs finish; then the worker stops and Done
// is closed.
func (w *Worker) Drain() {
	w.once.Do(func() {
		w.log.Info("draining: no new jobs; waiting for running jobs to finish")
		w.ledger.drain()
		go func() {
			w.jobs.Wait()
			w.shutdown()
		}()
	})
	_ = w.beat(context.Background())
}

// Done is closed once the worker has stopped.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Stop drains and waits for running jobs until ctx ends; jobs still running
// then are killed and handed back for another worker.
func (w *Worker) Stop(ctx context.Context) error {
	w.Drain()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.log.Warn("stop deadline: killing running jobs and handing them back")
		w.hard()
		<-w.done
		return ctx.Err()
	}
}

func (w *Worker) shutdown() {
	w.cancel()
	w.loops.Wait()
	for _, s := range w.subs {
		_ = s.Unsubscribe()
	}
	if err := w.store.RemoveWorker(context.Background(), w.cfg.ID); err != nil {
		w.log.Warn("remove heartbeat", "error", err)
	}
	metrics.WorkerGone(w.cfg.ID, w.cfg.Pool)
	w.hard()
	w.enforcer.close()
	w.log.Info("worker stopped")
	close(w.done)
}

// snapshot is the worker's live state for its heartbeat.
func (w *Worker) snapshot() *job.Worker {
	allowance, reserved, draining := w.ledger.state()
	w.mu.Lock()
	jobs := make([]string, 0, len(w.running))
	for id := range w.running {
		jobs = append(jobs, id)
	}
	clusters := make([]string, 0, len(w.consumers))
	for c := range w.consumers {
		clusters = append(clusters, c)
	}
	w.mu.Unlock()
	sort.Strings(jobs)
	sort.Strings(clusters)
	state := job.WorkerActive
	if draining {
		state = job.WorkerDraining
	}
	host, _ := os.Hostname()
	return &job.Worker{
		ID: w.cfg.ID, Incarnation: w.incarnation, Pool: w.cfg.Pool, Host: host, Clusters: clusters,
		Allowance: allowance, Reserved: reserved, Used: w.enforcer.used(), Jobs: jobs, State: state,
		Version: w.cfg.Version, Started: w.started.UTC(), Heartbeat: time.Now().UTC(),
	}
}

func (w *Worker) beat(ctx context.Context) error {
	snap := w.snapshot()
	metrics.Worker(snap.ID, snap.Pool, snap.Allowance, snap.Reserved, snap.Used)
	return w.store.Heartbeat(ctx, snap, 3*w.cfg.Heartbeat)
}

func (w *Worker) heartbeats() {
	defer w.loops.Done()
	t := time.NewTicker(w.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := w.beat(w.ctx); err != nil && w.ctx.Err() == nil {
				w.log.Warn("heartbeat", "error", err)
			} else if err == nil {
				w.restoreRunning(w.ctx) // in case Redis lost their records
			}
		case <-w.ctx.Done():
			return
		}
	}
}
