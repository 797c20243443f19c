package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/intake"
	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/worker"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// The roles: processes that make up a fleet.
func roleVerbs() map[string]verb {
	return map[string]verb{
		"up":        {"run everything on this machine: NATS, Redis, scheduler, intake, workers", runUp},
		"intake":    {"serve the HTTP API", runIntake},
		"scheduler": {"admit job requests published on jinn.submit", runScheduler},
		"worker":    {"pull and run jobs", runWorker},
		"nats":      {"run an embedded NATS server with JetStream (alone or in a cluster)", runNATS},
		"token":     {"make a token for the intake's --tokens file: jinn token USER ROLE", runToken}, // roles_security.go
		"version":   {"print the version", func(context.Context, []string) error { fmt.Println("jinn", version); return nil }},
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// roleFlags are the flags every long-running role has.
type roleFlags struct {
	logLevel string
	logJSON  bool
}

func addLogFlags(fs *flag.FlagSet) *roleFlags {
	r := &roleFlags{}
	fs.StringVar(&r.logLevel, "log-level", envString("JINN_LOG_LEVEL", "info"), "log `level`: trace, debug, info, warn, error (env JINN_LOG_LEVEL)")
	fs.BoolVar(&r.logJSON, "log-json", os.Getenv("JINN_LOG_JSON") == "true", "log as JSON lines (env JINN_LOG_JSON=true)")
	return r
}

func (r *roleFlags) logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(r.logLevel), JSONFormat: r.logJSON, Output: os.Stderr})
}

// commonFlags reach the shared parts: NATS, Redis and the archive.
func commonFlags(fs *flag.FlagSet) *fleet.Common {
	c := &fleet.Common{}
	fs.StringVar(&c.NATSURL, "nats", envString("JINN_NATS", "nats://127.0.0.1:4222"), "NATS `URL`s, comma separated (env JINN_NATS)")
	fs.IntVar(&c.Replicas, "replicas", envInt("JINN_REPLICAS", 1), "replicas of streams and buckets: 1, or 3 in a NATS cluster (env JINN_REPLICAS)")
	fs.DurationVar(&c.AckWait, "ack-wait", envDuration("JINN_ACK_WAIT", 30*time.Second), "lease of a job attempt; a dead worker's job returns after it (env JINN_ACK_WAIT)")
	fs.StringVar(&c.RedisURL, "redis", envString("JINN_REDIS", "redis://127.0.0.1:6379/0"), "Redis `URL` (env JINN_REDIS)")
	fs.StringVar(&c.Archive, "archive", envString("JINN_ARCHIVE", filepath.Join(fleet.DataDir(), "archive")), "archive of finished jobs and attached files: s3://bucket/prefix, file:///path or a `directory` (env JINN_ARCHIVE)")
	s3Flags(fs, &c.S3)             // roles_files.go
	securityFlags(fs, &c.Security) // roles_security.go
	fs.DurationVar(&c.Retention, "retention", envDuration("JINN_RETENTION", 7*24*time.Hour), "how long finished jobs stay in Redis (env JINN_RETENTION)")
	eventsMaxAgeFlag(fs, &c.EventsMaxAge) // roles_notify.go
	return c
}

// parseMemory reads a memory size in MiB ("8192") or a percentage of the
// machine's memory ("80%").
func parseMemory(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.ParseFloat(p, 64)
		if err != nil || n <= 0 || n > 100 {
			return 0, fmt.Errorf("--job-memory %q: a percentage must be in (0, 100]", s)
		}
		return int(float64(worker.MachineMemory()) * n / 100), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("--job-memory %q: give MiB (8192) or a percentage (80%%)", s)
	}
	return n, nil
}

// admissionFlags are the flags of admission, which every role that admits
// requests has (up, intake, scheduler); the returned function reads them
// after parsing.
func admissionFlags(fs *flag.FlagSet) func() (scheduler.Config, error) {
	defMem := fs.Int("default-memory", envInt("JINN_DEFAULT_MEMORY", 256), "MiB of a job whose request and command name none (env JINN_DEFAULT_MEMORY)")
	limit := fs.Int("user-active-limit", envInt("JINN_USER_ACTIVE_LIMIT", 0), "most unfinished jobs one user may have; more are refused with 429 (held when published on jinn.submit); 0 is no limit (env JINN_USER_ACTIVE_LIMIT)")
	limits := fs.String("user-limits", envString("JINN_USER_LIMITS", ""), "per-user `limits` overriding --user-active-limit: alice=50,etl=500, or @file with one user=limit a line; 0 is no limit (env JINN_USER_LIMITS)")
	return func() (scheduler.Config, error) {
		if *limit < 0 {
			return scheduler.Config{}, fmt.Errorf("--user-active-limit %d: give 0 (no limit) or more", *limit)
		}
		users, err := scheduler.ParseUserLimits(*limits)
		if err != nil {
			return scheduler.Config{}, fmt.Errorf("--user-limits: %w", err)
		}
		return scheduler.Config{DefaultMemory: *defMem, UserActiveLimit: *limit, UserLimits: users}, nil
	}
}

// enforceFlag is the worker's --enforce.
func enforceFlag(fs *flag.FlagSet) *string {
	return fs.String("enforce", envString("JINN_ENFORCE", worker.EnforceAuto), "how a job is held to its memory: auto (a cgroup per job, v2 or v1, else the RSS watchdog), cgroup, watchdog or off (env JINN_ENFORCE)")
}

// signals returns a channel of SIGINT and SIGTERM.
func signals() chan os.Signal {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	return ch
}

func runUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn up", flag.ContinueOnError)
	cfg := fleet.Config{Version: version}
	fs.StringVar(&cfg.Listen, "listen", envString("JINN_LISTEN", "127.0.0.1:8080"), "`address` of the HTTP API (env JINN_LISTEN)")
	fs.StringVar(&cfg.DataDir, "data-dir", fleet.DataDir(), "`directory` for NATS data, the archive and job directories (env JINN_DATA)")
	fs.StringVar(&cfg.RedisURL, "redis", envString("JINN_REDIS", ""), "Redis `URL`; empty runs an embedded Redis (env JINN_REDIS)")
	fs.StringVar(&cfg.NATSURL, "nats", envString("JINN_NATS", ""), "NATS `URL`; empty runs an embedded server (env JINN_NATS)")
	fs.StringVar(&cfg.NATSListen, "nats-listen", envString("JINN_NATS_LISTEN", "127.0.0.1:4222"), "client `address` of the embedded NATS server (env JINN_NATS_LISTEN)")
	fs.IntVar(&cfg.Workers, "workers", envInt("JINN_WORKERS", 1), "local workers (env JINN_WORKERS)")
	mem := fs.String("job-memory", envString("JINN_JOB_MEMORY", ""), "memory each worker gives to jobs, MiB or percent of the machine; default 80% shared by the workers (env JINN_JOB_MEMORY)")
	fs.DurationVar(&cfg.AckWait, "ack-wait", envDuration("JINN_ACK_WAIT", 30*time.Second), "lease of a job attempt (env JINN_ACK_WAIT)")
	fs.DurationVar(&cfg.KillGrace, "kill-grace", envDuration("JINN_KILL_GRACE", 10*time.Second), "time between SIGTERM and SIGKILL when a job is killed (env JINN_KILL_GRACE)")
	admission := admissionFlags(fs)
	enforce := enforceFlag(fs)
	fs.DurationVar(&cfg.ReserveAfter, "reserve-after", envDuration("JINN_RESERVE_AFTER", time.Minute), "a job queued this long gets room kept on a worker that hands it back, so small jobs cannot starve it (env JINN_RESERVE_AFTER)")
	lc, rc := leaderFlags(fs)
	sf := addScaleFlags(fs, false) // roles_autoscale.go
	fs.StringVar(&cfg.Archive, "archive", envString("JINN_ARCHIVE", ""), "archive of finished jobs and attached files: s3://bucket/prefix, file:///path or a directory; default <data-dir>/archive (env JINN_ARCHIVE)")
	s3Flags(fs, &cfg.S3)
	files, attachments := filesFlags(fs), attachmentFlags(fs)
	sec := intakeSecurityFlags(fs)   // roles_security.go
	securityFlags(fs, &cfg.Security) // for --nats and --redis
	notify := notifyFlags(fs)        // roles_notify.go
	eventsMaxAgeFlag(fs, &cfg.EventsMaxAge)
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Leader, cfg.Reaper = *lc, *rc
	cfg.Files, cfg.Attachments = files(), attachments()
	var err error
	if cfg.Notify, err = notify(); err != nil {
		return err
	}
	if cfg.Allowance, err = parseMemory(*mem); err != nil {
		return err
	}
	if cfg.Admission, err = admission(); err != nil {
		return err
	}
	cfg.Enforce = *enforce
	if cfg.Autoscale, err = sf.upConfig(cfg.Allowance, lf.logLevel); err != nil {
		return err
	}
	log := lf.logger("jinn")
	cfg.Log = log
	if cfg.Auth, err = sec.auth(ctx, log, "up"); err != nil {
		return err
	}
	cfg.TLSCert, cfg.TLSKey = sec.tlsCert, sec.tlsKey
	start := time.Now()
	f, err := fleet.Up(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" {
		log.Warn("using an embedded in-memory Redis: live job state is lost when jinn up stops (give --redis to keep it)")
	}
	log.Info("jinn is ready", "url", f.URL, "nats", f.NATSURL, "redis", f.RedisURL, "workers", len(f.Workers), "data", cfg.DataDir, "startup", time.Since(start).Round(time.Millisecond))
	fmt.Printf("jinn is ready at %s\n", f.URL)
	sig := signals()
	<-sig
	log.Info("stopping: running jobs get 30s to finish (signal again to stop now)")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		<-sig
		cancel()
	}()
	f.Close(sctx)
	return nil
}

// connectRole makes a role's logger, serves its /metrics when metricsListen
// is set, and connects it to NATS, Redis and the archive; stop undoes it all.
func connectRole(ctx context.Context, name string, lf *roleFlags, metricsListen string, common *fleet.Common) (hclog.Logger, *fleet.Conn, func(), error) {
	log := lf.logger(name)
	stopMetrics, err := serveMetrics(metricsListen, log)
	if err != nil {
		return nil, nil, nil, err
	}
	common.Log, common.Name = log, name
	conn, err := fleet.Connect(ctx, *common)
	if err != nil {
		stopMetrics()
		return nil, nil, nil, err
	}
	return log, conn, func() { conn.Close(); stopMetrics() }, nil
}

func runIntake(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn intake", flag.ContinueOnError)
	common := commonFlags(fs)
	listen := fs.String("listen", envString("JINN_LISTEN", "127.0.0.1:8080"), "`address` of the HTTP API (env JINN_LISTEN)")
	admission := admissionFlags(fs)
	attachments := attachmentFlags(fs)
	sec := intakeSecurityFlags(fs) // roles_security.go
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	admitCfg, err := admission()
	if err != nil {
		return err
	}
	log := lf.logger("jinn-intake")
	auth, err := sec.auth(ctx, log, "intake")
	if err != nil {
		return err
	}
	common.Log, common.Name = log, "jinn-intake"
	conn, err := fleet.Connect(ctx, *common)
	if err != nil {
		return err
	}
	defer conn.Close()
	adm := scheduler.NewAdmitter(admitCfg, conn.Broker, conn.Store, conn.Registry, log)
	api := intake.New(intake.Deps{Admitter: adm, Broker: conn.Broker, Store: conn.Store, Registry: conn.Registry, Archive: conn.Archive, Attachments: attachments(), Auth: auth, Log: log})
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(api.Shutdown) // ends event streams and followed logs
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	scheme := "http://"
	if sec.tlsCert != "" {
		scheme = "https://"
	}
	if ln, err = fleet.ServeTLS(ln, srv, sec.tlsCert, sec.tlsKey); err != nil {
		return err
	}
	log.Info("intake ready", "url", scheme+ln.Addr().String(), "auth", auth != nil)
	go func() {
		<-signals()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func runScheduler(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn scheduler", flag.ContinueOnError)
	common := commonFlags(fs)
	admission := admissionFlags(fs)
	lc, rc := leaderFlags(fs)
	sf := addScaleFlags(fs, true) // roles_autoscale.go
	notify := notifyFlags(fs)     // roles_notify.go
	metricsListen := metricsListenFlag(fs)
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	admitCfg, err := admission()
	if err != nil {
		return err
	}
	notifyCfg, err := notify()
	if err != nil {
		return err
	}
	log, conn, stop, err := connectRole(ctx, "jinn-scheduler", lf, *metricsListen, common)
	if err != nil {
		return err
	}
	defer stop()
	if err := fleet.Bootstrap(ctx, conn.Registry); err != nil {
		return err
	}
	adm := scheduler.NewAdmitter(admitCfg, conn.Broker, conn.Store, conn.Registry, log)
	c := scheduler.NewConsumer(adm, conn.Broker, log)
	if err := c.Start(ctx); err != nil {
		return err
	}
	notifier := scheduler.NewNotifier(notifyCfg, conn.Broker, conn.Store, log)
	if err := notifier.Start(ctx); err != nil {
		c.Stop()
		return err
	}
	defer notifier.Stop()
	duties, err := sf.duties(ctx, conn, log)
	if err != nil {
		c.Stop()
		return err
	}
	leader, err := fleet.StartLeader(ctx, conn, adm, *lc, *rc, log, duties...)
	if err != nil {
		c.Stop()
		return err
	}
	log.Info("scheduler ready", "candidate", leader.ID())
	<-signals()
	leader.Stop() // hands the leadership over at once
	c.Stop()
	return nil
}

// leaderFlags are the settings of the leader's election and of its reaper.
func leaderFlags(fs *flag.FlagSet) (*scheduler.LeaderConfig, *scheduler.ReaperConfig) {
	lc, rc := &scheduler.LeaderConfig{}, &scheduler.ReaperConfig{}
	fs.StringVar(&lc.ID, "leader-id", envString("JINN_LEADER_ID", ""), "`name` of this scheduler in the leader election; default host name and pid (env JINN_LEADER_ID)")
	fs.DurationVar(&lc.TTL, "leader-ttl", envDuration("JINN_LEADER_TTL", scheduler.DefaultLeaderTTL), "a dead leader is replaced this long after its last renewal; it renews every TTL/4 and stops its duties TTL/4 before its lease ends (env JINN_LEADER_TTL)")
	fs.DurationVar(&rc.Interval, "reap-interval", envDuration("JINN_REAP_INTERVAL", 10*time.Second), "time between two rounds of the reaper of lost and stuck jobs (env JINN_REAP_INTERVAL)")
	fs.DurationVar(&rc.AcceptedAfter, "accepted-after", envDuration("JINN_ACCEPTED_AFTER", time.Minute), "a job ACCEPTED this long (its admission stopped half way) is admitted again (env JINN_ACCEPTED_AFTER)")
	fs.DurationVar(&rc.QueuedAfter, "queued-after", envDuration("JINN_QUEUED_AFTER", time.Minute), "a job QUEUED this long whose message is gone from JINN_JOBS is LOST (env JINN_QUEUED_AFTER)")
	fs.DurationVar(&rc.InitTimeout, "init-timeout", envDuration("JINN_INIT_TIMEOUT", 10*time.Minute), "a job CLAIMED or INIT this long on a live worker is FAILED and killed (env JINN_INIT_TIMEOUT)")
	return lc, rc
}

func runWorker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn worker", flag.ContinueOnError)
	common := commonFlags(fs)
	cfg := worker.Config{Version: version}
	fs.StringVar(&cfg.ID, "id", envString("JINN_WORKER_ID", ""), "worker `id`; default host name and a random suffix (env JINN_WORKER_ID)")
	fs.StringVar(&cfg.Pool, "pool", envString("JINN_POOL", "default"), "`pool` the worker belongs to (env JINN_POOL)")
	clusters := fs.String("clusters", envString("JINN_CLUSTERS", "*"), "clusters served, comma separated; * for every cluster (env JINN_CLUSTERS)")
	fs.StringVar(&cfg.DataDir, "data-dir", filepath.Join(fleet.DataDir(), "worker"), "`directory` of job directories (env JINN_DATA)")
	mem := fs.String("job-memory", envString("JINN_JOB_MEMORY", "80%"), "memory given to jobs, MiB or percent of the machine (env JINN_JOB_MEMORY)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", envDuration("JINN_HEARTBEAT", 2*time.Second), "heartbeat interval; dead after three missed (env JINN_HEARTBEAT)")
	fs.DurationVar(&cfg.KillGrace, "kill-grace", envDuration("JINN_KILL_GRACE", 10*time.Second), "time between SIGTERM and SIGKILL when a job is killed (env JINN_KILL_GRACE)")
	drainTimeout := fs.Duration("drain-timeout", envDuration("JINN_DRAIN_TIMEOUT", 0), "after a drain starts, hand running jobs back after this long; 0 waits for them (env JINN_DRAIN_TIMEOUT)")
	enforce := enforceFlag(fs)
	fs.DurationVar(&cfg.ReserveAfter, "reserve-after", envDuration("JINN_RESERVE_AFTER", time.Minute), "a job queued this long gets room kept here when it does not fit, so small jobs cannot starve it (env JINN_RESERVE_AFTER)")
	files := filesFlags(fs)
	metricsListen := metricsListenFlag(fs) // roles_notify.go
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Files = files()
	cfg.Enforce = *enforce
	var err error
	if cfg.Allowance, err = parseMemory(*mem); err != nil {
		return err
	}
	cfg.Clusters = splitTags(*clusters)
	log, conn, stop, err := connectRole(ctx, "jinn-worker", lf, *metricsListen, common)
	if err != nil {
		return err
	}
	defer stop()
	w, err := worker.New(cfg, worker.Deps{Broker: conn.Broker, Store: conn.Store, Registry: conn.Registry, Archive: conn.Archive, URIs: conn.URIs, Log: log})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	sig := signals()
	select {
	case <-sig:
	case <-w.Done(): // drained on request
		return nil
	}
	// SIGTERM drains; a second one (or the drain timeout) hands running jobs back.
	stopCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if *drainTimeout > 0 {
		stopCtx, cancel = context.WithTimeout(context.Background(), *drainTimeout)
		defer cancel()
	}
	go func() {
		select {
		case <-sig:
			cancel()
		case <-stopCtx.Done():
		}
	}()
	_ = w.Stop(stopCtx)
	return nil
}

func runNATS(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn nats", flag.ContinueOnError)
	var cfg natsd.Config
	fs.StringVar(&cfg.ConfigFile, "config", envString("JINN_NATS_CONFIG", ""), "nats-server configuration `file` (env JINN_NATS_CONFIG)")
	fs.StringVar(&cfg.Listen, "listen", envString("JINN_NATS_LISTEN", "127.0.0.1:4222"), "client `address` (env JINN_NATS_LISTEN)")
	fs.StringVar(&cfg.StoreDir, "store-dir", envString("JINN_NATS_STORE", filepath.Join(fleet.DataDir(), "nats")), "JetStream `directory` (env JINN_NATS_STORE)")
	fs.StringVar(&cfg.Name, "name", envString("JINN_NATS_NAME", ""), "server `name`, distinct in a cluster (env JINN_NATS_NAME)")
	fs.StringVar(&cfg.ClusterName, "cluster-name", envString("JINN_NATS_CLUSTER", ""), "cluster `name`; set to join a cluster (env JINN_NATS_CLUSTER)")
	fs.StringVar(&cfg.ClusterListen, "cluster-listen", envString("JINN_NATS_CLUSTER_LISTEN", "127.0.0.1:6222"), "route `address` (env JINN_NATS_CLUSTER_LISTEN)")
	routes := fs.String("routes", envString("JINN_NATS_ROUTES", ""), "route `URLs` of the other servers, comma separated (env JINN_NATS_ROUTES)")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", envDuration("JINN_NATS_SYNC_INTERVAL", 0), "JetStream fsync interval; 0 keeps the server default of 2m (env JINN_NATS_SYNC_INTERVAL)")
	fs.BoolVar(&cfg.SyncAlways, "sync-always", os.Getenv("JINN_NATS_SYNC_ALWAYS") == "true", "fsync every write (env JINN_NATS_SYNC_ALWAYS=true)")
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Routes = splitTags(*routes)
	if cfg.ConfigFile != "" {
		// With a configuration file, a flag overrides it only when given.
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if !given["listen"] && os.Getenv("JINN_NATS_LISTEN") == "" {
			cfg.Listen = ""
		}
		if !given["store-dir"] && os.Getenv("JINN_NATS_STORE") == "" {
			cfg.StoreDir = ""
		}
		if !given["cluster-listen"] && os.Getenv("JINN_NATS_CLUSTER_LISTEN") == "" {
			cfg.ClusterListen = ""
		}
	}
	log := lf.logger("jinn-nats")
	s, err := natsd.Start(cfg, log)
	if err != nil {
		return err
	}
	log.Info("nats ready", "url", s.ClientURL(), "cluster", cfg.ClusterName)
	<-signals()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
