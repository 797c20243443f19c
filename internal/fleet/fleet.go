// Package fleet wires jinn's parts into running roles: the connections every
// role shares, and Up, which starts the whole system in one process (an
// embedded NATS server and Redis, the scheduler, the intake and workers). The
// CLI and the end-to-end tests start jinn through it, so the tests run the
// wiring users run.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/intake"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/scheduler/scale"
	"github.com/jinn-fleet/jinn/store"
	"github.com/jinn-fleet/jinn/worker"
)

// Common is what every role needs to reach the shared parts.
type Common struct {
	NATSURL  string // default nats://127.0.0.1:4222
	Replicas int    // of streams and buckets: 1, or 3 in a NATS cluster
	AckWait  time.Duration
	RedisURL string // redis://[user:password@]host:port/db
	// Archive is where finished jobs and attachments go: s3://bucket/prefix,
	// file:///path or a directory. Empty: no archive.
	Archive string
	// S3 reaches an s3:// archive and s3:// job files.
	S3        store.S3Config
	Retention time.Duration
	Name      string // of the NATS connection
	// Security: NATS credentials and TLS, Redis TLS (security.go).
	Security Security
	Log      hclog.Logger
	// EventsMaxAge is how long JINN_EVENTS keeps status events; default 24h.
	EventsMaxAge time.Duration
}

// Conn holds the connections of one process.
type Conn struct {
	Broker   *broker.Broker
	Redis    redis.UniversalClient
	Store    *store.Store
	Registry *store.Registry
	Archive  store.Archive
	URIs     *store.URIs // reads job files by URI
	closers  []func()
}

// Connect opens NATS (making the streams), Redis, the registry and the archive.
func Connect(ctx context.Context, c Common) (*Conn, error) {
	if c.Log == nil {
		c.Log = hclog.NewNullLogger()
	}
	natsOpts, err := c.Security.natsOptions()
	if err != nil {
		return nil, err
	}
	b, err := broker.Connect(ctx, broker.Config{URL: c.NATSURL, Name: c.Name, Replicas: c.Replicas, AckWait: c.AckWait, Options: natsOpts, EventsMaxAge: c.EventsMaxAge}, c.Log)
	if err != nil {
		return nil, err
	}
	conn := &Conn{Broker: b}
	conn.closers = append(conn.closers, b.Close)
	fail := func(err error) (*Conn, error) {
		conn.Close()
		return nil, err
	}
	opts, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return fail(fmt.Errorf("redis url: %w (want redis://[user:password@]host:port/db or rediss:// for TLS)", err))
	}
	if err := c.Security.redisTLS(opts); err != nil {
		return fail(err)
	}
	rdb := redis.NewClient(opts)
	rdb.AddHook(store.ErrorHook{}) // jinn_redis_errors_total
	conn.closers = append(conn.closers, func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fail(fmt.Errorf("redis at %s: %w", opts.Addr, err))
	}
	conn.Redis = rdb
	conn.Store = store.New(rdb, store.Config{Retention: c.Retention})
	kv, err := b.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: broker.ConfigBucket, Description: "jinn clusters, commands and applications", History: 5})
	if err != nil {
		return fail(err)
	}
	reg, err := store.OpenRegistry(ctx, kv, c.Log)
	if err != nil {
		return fail(err)
	}
	conn.Registry = reg
	conn.closers = append(conn.closers, reg.Close)
	conn.URIs = store.NewURIs(c.S3)
	if c.Archive != "" {
		o, err := store.OpenObjects(ctx, store.ObjectsConfig{Archive: c.Archive, S3: c.S3})
		if err != nil {
			return fail(err)
		}
		conn.Archive, conn.URIs = o.Archive, o.URIs
		conn.closers = append(conn.closers, func() { _ = o.Close() })
	}
	return conn, nil
}

// Close closes the connections, last opened first.
func (c *Conn) Close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}

// Bootstrap creates the default cluster and commands unless they exist: a
// cluster "local" (sched:adhoc, type:local), a command "exec" (type:exec: the
// args are the argv) and a command "bash" (type:bash: bash -c with the args).
func Bootstrap(ctx context.Context, r *store.Registry) error {
	if _, _, err := r.Cluster("local"); errors.Is(err, store.ErrNoEntity) {
		c := job.Cluster{Name: "local", Description: "this machine", Tags: []string{"sched:adhoc", "type:local"}, Status: job.ClusterUp}
		if _, err := r.PutCluster(ctx, c, 0); err != nil {
			return err
		}
	}
	defaults := []job.Command{
		{Name: "exec", Description: "runs its args as the argv", Tags: []string{"type:exec"}, Status: job.CommandActive},
		{Name: "bash", Description: "runs bash -c with its args", Tags: []string{"type:bash"}, Status: job.CommandActive, Executable: []string{"bash", "-c"}},
	}
	for _, cmd := range defaults {
		if _, _, err := r.Command(cmd.Name); errors.Is(err, store.ErrNoEntity) {
			if _, err := r.PutCommand(ctx, cmd, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// Config of Up: the whole system in one process.
type Config struct {
	DataDir string // NATS data, archive and job directories
	Listen  string // HTTP address of the intake; default 127.0.0.1:8080
	// NATSListen is the embedded server's client address (127.0.0.1:-1 picks
	// a free port). Default 127.0.0.1:4222. Ignored with NATSURL.
	NATSListen string
	NATSURL    string // use this NATS instead of an embedded one
	RedisURL   string // use this Redis instead of an embedded one
	Workers    int    // local workers; default 1, and -1 for none (they run elsewhere)
	// Replicas of streams and buckets: 3 with NATSURL naming a cluster.
	Replicas int
	// Leader and Reaper configure the leader's election and its reaper duty.
	Leader scheduler.LeaderConfig
	Reaper scheduler.ReaperConfig
	// Allowance of each worker in MiB; default 80% of memory / Workers.
	Allowance int
	AckWait   time.Duration
	Heartbeat time.Duration
	KillGrace time.Duration
	Version   string
	Log       hclog.Logger
	// Archive is where finished jobs and attachments go: s3://bucket/prefix,
	// file:///path or a directory. Default <DataDir>/archive.
	Archive string
	// S3 reaches an s3:// archive and s3:// job files.
	S3 store.S3Config
	// Files go to every local worker; see worker.FilesConfig.
	Files worker.FilesConfig
	// Attachments bound the files of a multipart submission.
	Attachments intake.AttachmentLimits
	// Admission is the scheduler's: the default job memory and the per-user
	// active-job limits.
	Admission scheduler.Config
	// Enforce, ReserveAfter and HandBack go to every local worker; see
	// worker.Config.
	Enforce      string
	ReserveAfter time.Duration
	HandBack     time.Duration
	// Autoscale, when set, runs the workers as child processes that the
	// autoscaler sizes, instead of Workers in-process ones (autoscale.go).
	Autoscale *Autoscale
	// Auth checks the intake's bearer tokens; nil: auth off.
	Auth *intake.Auth
	// TLSCert and TLSKey (PEM files) serve the intake over HTTPS.
	TLSCert, TLSKey string
	// Security reaches an external NATS and Redis (NATSURL, RedisURL).
	Security Security
	// Notify configures the webhook notifier (global webhooks, secret).
	Notify scheduler.NotifyConfig
	// EventsMaxAge is how long JINN_EVENTS keeps status events; default 24h.
	EventsMaxAge time.Duration
}

// Fleet is a running single-process system.
type Fleet struct {
	*Conn
	URL      string // of the intake
	NATSURL  string
	RedisURL string
	NATS     *server.Server
	Redis    *miniredis.Miniredis
	Admitter *scheduler.Admitter
	Intake   *intake.Server
	Workers  []*worker.Worker
	Leader   *scheduler.Leader
	// Autoscaler and LocalWorkers are set with Config.Autoscale.
	Autoscaler   *scheduler.Autoscaler
	LocalWorkers *scale.Local
	// Notifier delivers webhooks (scheduler/notify.go).
	Notifier *scheduler.Notifier

	consumer   *scheduler.Consumer
	stopExpiry func() // of the embedded Redis's TTLs
	http       *http.Server
	log        hclog.Logger
}

// Up starts everything and returns once the intake accepts requests.
func Up(ctx context.Context, cfg Config) (f *Fleet, err error) {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("a data directory is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:4222"
	}
	if cfg.Autoscale != nil {
		cfg.Workers = -1 // the autoscaler starts them
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.Workers < 0 {
		cfg.Workers = 0
	}
	if cfg.Archive == "" {
		cfg.Archive = filepath.Join(cfg.DataDir, "archive")
	}
	if cfg.Allowance <= 0 {
		cfg.Allowance = worker.DefaultAllowance() / max(cfg.Workers, 1)
	}
	f = &Fleet{log: cfg.Log}
	defer func() {
		if err != nil {
			f.Close(context.Background())
		}
	}()
	f.NATSURL = cfg.NATSURL
	if f.NATSURL == "" {
		f.NATS, err = natsd.Start(natsd.Config{Listen: cfg.NATSListen, StoreDir: filepath.Join(cfg.DataDir, "nats")}, cfg.Log)
		if err != nil {
			return nil, err
		}
		f.NATSURL = f.NATS.ClientURL()
	}
	f.RedisURL = cfg.RedisURL
	if f.RedisURL == "" {
		f.Redis = miniredis.NewMiniRedis()
		if err := f.Redis.Start(); err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		f.RedisURL = "redis://" + f.Redis.Addr()
		f.stopExpiry = expireInRealTime(f.Redis, 50*time.Millisecond)
	}
	f.Conn, err = Connect(ctx, Common{NATSURL: f.NATSURL, RedisURL: f.RedisURL, AckWait: cfg.AckWait, Replicas: cfg.Replicas,
		Archive: cfg.Archive, S3: cfg.S3, Name: "jinn-up", Security: cfg.Security, Log: cfg.Log, EventsMaxAge: cfg.EventsMaxAge})
	if err != nil {
		return nil, err
	}
	if err := Bootstrap(ctx, f.Registry); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	f.Admitter = scheduler.NewAdmitter(cfg.Admission, f.Broker, f.Store, f.Registry, cfg.Log)
	f.consumer = scheduler.NewConsumer(f.Admitter, f.Broker, cfg.Log)
	if err := f.consumer.Start(ctx); err != nil {
		return nil, err
	}
	f.Notifier = scheduler.NewNotifier(cfg.Notify, f.Broker, f.Store, cfg.Log)
	if err := f.Notifier.Start(ctx); err != nil {
		return nil, err
	}
	duties, err := f.startAutoscale(cfg)
	if err != nil {
		return nil, err
	}
	if f.Leader, err = StartLeader(ctx, f.Conn, f.Admitter, cfg.Leader, cfg.Reaper, cfg.Log, duties...); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Workers; i++ {
		w, err := worker.New(worker.Config{
			ID: fmt.Sprintf("local-%d", i+1), DataDir: filepath.Join(cfg.DataDir, "worker", fmt.Sprint(i+1)),
			Allowance: cfg.Allowance, Heartbeat: cfg.Heartbeat, KillGrace: cfg.KillGrace, Version: cfg.Version,
			Enforce: cfg.Enforce, ReserveAfter: cfg.ReserveAfter, HandBack: cfg.HandBack, Files: cfg.Files,
		}, worker.Deps{Broker: f.Broker, Store: f.Store, Registry: f.Registry, Archive: f.Archive, URIs: f.URIs, Log: cfg.Log})
		if err != nil {
			return nil, err
		}
		if err := w.Start(ctx); err != nil {
			return nil, err
		}
		f.Workers = append(f.Workers, w)
	}
	f.Intake = intake.New(intake.Deps{Admitter: f.Admitter, Broker: f.Broker, Store: f.Store, Registry: f.Registry, Archive: f.Archive, Attachments: cfg.Attachments, Auth: cfg.Auth, Log: cfg.Log})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("intake listen on %s: %w", cfg.Listen, err)
	}
	f.URL = "http://" + ln.Addr().String()
	f.http = &http.Server{Handler: f.Intake, ReadHeaderTimeout: 10 * time.Second}
	f.http.RegisterOnShutdown(f.Intake.Shutdown) // ends event streams and followed logs
	if ln, err = ServeTLS(ln, f.http, cfg.TLSCert, cfg.TLSKey); err != nil {
		return nil, err
	}
	if cfg.TLSCert != "" {
		f.URL = "https://" + ln.Addr().String()
	}
	go func() {
		if err := f.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Log.Error("intake stopped", "error", err)
		}
	}()
	return f, nil
}

// Close stops the fleet: the intake, then the workers (running jobs get until
// ctx ends to finish, then are handed back), the scheduler, the connections
// and the embedded servers.
func (f *Fleet) Close(ctx context.Context) {
	if f.http != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = f.http.Shutdown(sctx)
		cancel()
	}
	for _, w := range f.Workers {
		w.Drain() // all at once; then wait for each
	}
	for _, w := range f.Workers {
		_ = w.Stop(ctx)
	}
	if f.LocalWorkers != nil {
		f.LocalWorkers.Close(ctx)
	}
	if f.Leader != nil {
		f.Leader.Stop()
	}
	if f.Notifier != nil {
		f.Notifier.Stop()
	}
	if f.consumer != nil {
		f.consumer.Stop()
	}
	if f.Conn != nil {
		f.Conn.Close()
	}
	if f.NATS != nil {
		f.NATS.Shutdown()
		f.NATS.WaitForShutdown()
	}
	if f.stopExpiry != nil {
		f.stopExpiry()
	}
	if f.Redis != nil {
		f.Redis.Close()
	}
}

// DataDir returns the default data directory: $JINN_DATA or ~/.jinn.
func DataDir() string {
	if d := os.Getenv("JINN_DATA"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".jinn"
	}
	return filepath.Join(home, ".jinn")
}
