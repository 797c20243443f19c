// Package metrics defines every Prometheus metric jinn exports, in one
// place, and the small functions the other packages record through. It owns
// the process's registry (Registry) and its HTTP handler; it imports nothing
// of jinn and must never grow business logic: a caller decides what happened,
// this package only counts it. docs/metrics.md lists each metric.
//
// Labels are bounded by the fleet's configuration (cluster, command, pool,
// worker and status names), never by job ids or users.
package metrics

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every metric of this process, plus the Go runtime and
// process collectors. A process that runs several roles (jinn up, the
// end-to-end tests) shares it: counters add up across the roles.
var Registry = prometheus.NewRegistry()

// jobBuckets span a job's queue wait and run time: 10 ms to a day.
var jobBuckets = []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 24 * 3600}

var (
	// JobsSubmitted counts admitted requests by the cluster and command they
	// resolved to; an INVALID request counts with both labels empty.
	JobsSubmitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jinn_jobs_submitted_total",
		Help: "Job requests admitted, by the cluster and command they resolved to (empty for INVALID).",
	}, []string{"cluster", "command"})
	// JobsStarted counts jobs that reached RUNNING (each attempt).
	JobsStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jinn_jobs_started_total",
		Help: "Job attempts that reached RUNNING.",
	}, []string{"cluster", "command"})
	// JobsFinished counts jobs that reached a terminal status.
	JobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jinn_jobs_finished_total",
		Help: "Jobs that reached a terminal status, by status.",
	}, []string{"cluster", "command", "status"})
	// QueueWait is the time from QUEUED (the publish of the job's message)
	// to RUNNING.
	QueueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jinn_job_queue_wait_seconds",
		Help:    "Time from QUEUED to RUNNING.",
		Buckets: jobBuckets,
	}, []string{"cluster", "command"})
	// RunTime is the time from RUNNING to the final status.
	RunTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jinn_job_run_seconds",
		Help:    "Time from RUNNING to the final status, by status.",
		Buckets: jobBuckets,
	}, []string{"cluster", "command", "status"})
	// JobsRunning is the number of jobs this process's workers run now.
	JobsRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jinn_jobs_running",
		Help: "Jobs running now on this process's workers.",
	}, []string{"cluster", "command"})
	// WorkerMemory is a worker's memory in MiB, by kind: allowance (given to
	// jobs), reserved (by its running jobs), used (measured; 0 when not).
	WorkerMemory = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jinn_worker_memory_mib",
		Help: "A worker's memory in MiB: kind is allowance, reserved or used.",
	}, []string{"worker", "pool", "kind"})
	// PoolSize and PoolDesired are the autoscaler's view of a pool, set by
	// the leader at each round.
	PoolSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jinn_pool_size",
		Help: "Active workers of a pool, as the leader's autoscaler last counted them.",
	}, []string{"pool"})
	PoolDesired = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jinn_pool_desired",
		Help: "Desired size of a pool, as the leader's autoscaler last decided.",
	}, []string{"pool"})
	// ScaleDecisions counts the autoscaler's decisions to grow or shrink.
	ScaleDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jinn_autoscaler_decisions_total",
		Help: "Autoscaler decisions that changed a pool, by direction (up, down).",
	}, []string{"pool", "direction"})
	// NATSErrors counts NATS client trouble by kind: disconnect, async
	// (errors the server reports asynchronously, e.g. a slow consumer).
	NATSErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jinn_nats_errors_total",
		Help: "NATS client errors, by kind (disconnect, async).",
	}, []string{"kind"})
	// RedisErrors counts failed Redis commands by command name ("dial" for
	// failed connections, "pipeline" for a failed pipeline).
	RedisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jinn_redis_errors_total",
		Help: "Redis client errors, by command.",
	}, []string{"command"})
	// WebhookDeliveries counts webhook POSTs by target (job, global) and
	// result: delivered, failed (will be retried), gave_up (retries spent).
	WebhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jinn_webhook_deliveries_total",
		Help: "Webhook deliveries, by target (job, global) and result (delivered, failed, gave_up).",
	}, []string{"target", "result"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		JobsSubmitted, JobsStarted, JobsFinished, QueueWait, RunTime, JobsRunning,
		WorkerMemory, PoolSize, PoolDesired, ScaleDecisions,
		NATSErrors, RedisErrors, WebhookDeliveries,
	)
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

// JobSubmitted records an admitted request.
func JobSubmitted(cluster, command string) { JobsSubmitted.WithLabelValues(cluster, command).Inc() }

// JobStarted records an attempt that reached RUNNING after waiting in the
// queue for wait (not observed when negative: unknown).
func JobStarted(cluster, command string, wait time.Duration) {
	JobsStarted.WithLabelValues(cluster, command).Inc()
	JobsRunning.WithLabelValues(cluster, command).Inc()
	if wait >= 0 {
		QueueWait.WithLabelValues(cluster, command).Observe(wait.Seconds())
	}
}

// JobFinished records a terminal status. ran is the time it ran, and
// negative when it never ran here (settled before RUNNING, or by the
// leader); only a job that ran is observed in the run time histogram and
// leaves the running gauge.
func JobFinished(cluster, command, status string, ran time.Duration) {
	JobsFinished.WithLabelValues(cluster, command, status).Inc()
	if ran >= 0 {
		RunTime.WithLabelValues(cluster, command, status).Observe(ran.Seconds())
		JobsRunning.WithLabelValues(cluster, command).Dec()
	}
}

// JobLeft takes a job that ran here but did not finish here (handed back,
// or its attempt went stale) out of the running gauge.
func JobLeft(cluster, command string) { JobsRunning.WithLabelValues(cluster, command).Dec() }

// Worker records a worker's memory at a heartbeat.
func Worker(id, pool string, allowance, reserved, used int) {
	WorkerMemory.WithLabelValues(id, pool, "allowance").Set(float64(allowance))
	WorkerMemory.WithLabelValues(id, pool, "reserved").Set(float64(reserved))
	WorkerMemory.WithLabelValues(id, pool, "used").Set(float64(used))
}

// WorkerGone removes a stopped worker's memory series.
func WorkerGone(id, pool string) {
	for _, kind := range []string{"allowance", "reserved", "used"} {
		WorkerMemory.DeleteLabelValues(id, pool, kind)
	}
}

// Pool records the autoscaler's view of a pool and, when it changed the
// pool, its decision ("up" or "down"; anything else is not counted).
func Pool(pool string, size, desired int, direction string) {
	PoolSize.WithLabelValues(pool).Set(float64(size))
	PoolDesired.WithLabelValues(pool).Set(float64(desired))
	if direction == "up" || direction == "down" {
		ScaleDecisions.WithLabelValues(pool, direction).Inc()
	}
}

// NATSError records NATS client trouble of a kind.
func NATSError(kind string) { NATSErrors.WithLabelValues(kind).Inc() }

// RedisError records a failed Redis command.
func RedisError(command string) { RedisErrors.WithLabelValues(command).Inc() }

// Webhook records a webhook delivery's result.
func Webhook(target, result string) { WebhookDeliveries.WithLabelValues(target, result).Inc() }

// Serve serves /metrics on addr until the returned function is called. It
// is the tiny HTTP server of roles without one of their own (scheduler,
// worker); it returns once the listener is open.
func Serve(addr string, onError func(error)) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && onError != nil {
			onError(err)
		}
	}()
	return func() { _ = srv.Close() }, ln.Addr().String(), nil
}
