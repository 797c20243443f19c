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
	fs.StringVar(&c.Archive, "archive", envString("JINN_ARCHIVE", filepath.Join(fleet.DataDir(), "archive")), "archive `directory` of finished jobs (env JINN_ARCHIVE)")
	fs.DurationVar(&c.Retention, "retention", envDuration("JINN_RETENTION", 7*24*time.Hour), "how long finished jobs stay in Redis (env JINN_RETENTION)")
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
		return int(float64(worker.DefaultAllowance()) / 0.8 * n / 100), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("--job-memory %q: give MiB (8192) or a percentage (80%%)", s)
	}
	return n, nil
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
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.Allowance, err = parseMemory(*mem); err != nil {
		return err
	}
	log := lf.logger("jinn")
	cfg.Log = log
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

func runIntake(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn intake", flag.ContinueOnError)
	common := commonFlags(fs)
	listen := fs.String("listen", envString("JINN_LISTEN", "127.0.0.1:8080"), "`address` of the HTTP API (env JINN_LISTEN)")
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := lf.logger("jinn-intake")
	common.Log, common.Name = log, "jinn-intake"
	conn, err := fleet.Connect(ctx, *common)
	if err != nil {
		return err
	}
	defer conn.Close()
	adm := scheduler.NewAdmitter(scheduler.Config{}, conn.Broker, conn.Store, conn.Registry, log)
	srv := &http.Server{Handler: intake.New(intake.Deps{Admitter: adm, Broker: conn.Broker, Store: conn.Store, Registry: conn.Registry, Archive: conn.Archive, Log: log}), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	log.Info("intake ready", "url", "http://"+ln.Addr().String())
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
	defMem := fs.Int("default-memory", envInt("JINN_DEFAULT_MEMORY", 256), "MiB of a job whose request and command name none (env JINN_DEFAULT_MEMORY)")
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := lf.logger("jinn-scheduler")
	common.Log, common.Name = log, "jinn-scheduler"
	conn, err := fleet.Connect(ctx, *common)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := fleet.Bootstrap(ctx, conn.Registry); err != nil {
		return err
	}
	adm := scheduler.NewAdmitter(scheduler.Config{DefaultMemory: *defMem}, conn.Broker, conn.Store, conn.Registry, log)
	c := scheduler.NewConsumer(adm, conn.Broker, log)
	if err := c.Start(ctx); err != nil {
		return err
	}
	log.Info("scheduler ready")
	<-signals()
	c.Stop()
	return nil
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
	lf := addLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.Allowance, err = parseMemory(*mem); err != nil {
		return err
	}
	cfg.Clusters = splitTags(*clusters)
	log := lf.logger("jinn-worker")
	common.Log, common.Name = log, "jinn-worker"
	conn, err := fleet.Connect(ctx, *common)
	if err != nil {
		return err
	}
	defer conn.Close()
	w, err := worker.New(cfg, worker.Deps{Broker: conn.Broker, Store: conn.Store, Registry: conn.Registry, Archive: conn.Archive, Log: log})
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
