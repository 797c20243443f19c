package intake

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/intake/ui"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/store"
)

// Deps are what the intake calls.
type Deps struct {
	Admitter *scheduler.Admitter
	Broker   *broker.Broker
	Store    *store.Store
	Registry *store.Registry
	Archive  store.Archive
	// Attachments bound the files of a multipart submission (attachments.go).
	Attachments AttachmentLimits
	// Auth checks bearer tokens (auth.go); nil turns auth off.
	Auth *Auth
	Log  hclog.Logger
}

// Server serves the API.
type Server struct {
	d   Deps
	log hclog.Logger
	mux *http.ServeMux
	// patterns are the routes registered through routes()'s h, in order:
	// the auth table and the OpenAPI document are checked against them.
	patterns []string
	// FollowPoll is how often a followed log is read while its job runs.
	FollowPoll time.Duration
	// stop ends the event streams at Shutdown (events.go).
	stop     chan struct{}
	stopOnce sync.Once
}

// New returns the API handler.
func New(d Deps) *Server {
	s := &Server{d: d, log: d.Log.Named("intake"), mux: http.NewServeMux(), FollowPoll: 200 * time.Millisecond, stop: make(chan struct{})}
	s.routes()
	return s
}

func (s *Server) routes() {
	const v1 = "/api/v1"
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		s.patterns = append(s.patterns, pattern)
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				writeError(w, err)
			}
		})
	}
	h("POST "+v1+"/jobs", s.submit)
	h("GET "+v1+"/jobs", s.listJobs)
	h("GET "+v1+"/jobs/{id}", s.getJob)
	h("DELETE "+v1+"/jobs/{id}", s.killJob)
	h("GET "+v1+"/jobs/{id}/output", s.output)
	h("GET "+v1+"/jobs/{id}/output/{path...}", s.output)
	h("GET "+v1+"/jobs/{id}/logs", s.logs)
	h("GET "+v1+"/jobs/{id}/history", s.history) // events.go
	h("GET "+v1+"/events", s.events)             // events.go: server-sent events

	clusters := entityAPI[job.Cluster]{s: s, k: clusterKind{}}
	h("GET "+v1+"/clusters", clusters.list)
	h("GET "+v1+"/clusters/{name}", clusters.get)
	h("PUT "+v1+"/clusters/{name}", clusters.put)
	h("PATCH "+v1+"/clusters/{name}", clusters.patch)
	h("DELETE "+v1+"/clusters/{name}", clusters.del)
	commands := entityAPI[job.Command]{s: s, k: commandKind{}}
	h("GET "+v1+"/commands", commands.list)
	h("GET "+v1+"/commands/{name}", commands.get)
	h("PUT "+v1+"/commands/{name}", commands.put)
	h("PATCH "+v1+"/commands/{name}", commands.patch)
	h("DELETE "+v1+"/commands/{name}", commands.del)
	s.applicationRoutes(h, v1) // applications.go

	h("GET "+v1+"/workers", s.workers)
	h("GET "+v1+"/pools", s.pools)       // pools.go
	h("GET "+v1+"/pools/{name}", s.pool) // pools.go
	h("POST "+v1+"/workers/{id}/drain", s.drainWorker)
	h("GET /healthz", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	})
	h("GET /readyz", s.ready)
	h("GET /metrics", serveMetrics)         // Prometheus: internal/metrics, docs/metrics.md
	h("GET "+v1+"/openapi.json", s.openAPI) // openapi.go
	h(v1+"/", func(w http.ResponseWriter, r *http.Request) error {
		return notFound("no API route %s %s", r.Method, r.URL.Path)
	})
	// The web UI at / (its pages) and /static/ (its files).
	if u, err := ui.New(s.log); err != nil {
		s.log.Error("the web UI is off: its embedded files are broken", "error", err)
	} else {
		u.Register(s.mux)
	}
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.d.Auth != nil {
		s.serveAuthorized(w, r) // auth.go
		return
	}
	s.mux.ServeHTTP(w, r)
}

// serveMetrics serves this process's Prometheus metrics.
func serveMetrics(w http.ResponseWriter, r *http.Request) error {
	metrics.Handler().ServeHTTP(w, r)
	return nil
}

// Patterns returns the routes registered by routes().
func (s *Server) Patterns() []string { return append([]string(nil), s.patterns...) }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	problems := map[string]string{}
	if err := s.d.Store.Redis().Ping(ctx).Err(); err != nil {
		problems["redis"] = err.Error()
	}
	if !s.d.Broker.NC.IsConnected() {
		problems["nats"] = s.d.Broker.NC.Status().String()
	}
	if len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "problems": problems})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

func (s *Server) workers(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.d.Store.Workers(r.Context())
	if err != nil {
		return err
	}
	if ws == nil {
		ws = []job.Worker{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": ws})
	return nil
}

// drainWorker asks a worker to drain: it stops pulling, finishes its running
// jobs, then exits. The answer is the worker as its heartbeat now shows it.
func (s *Server) drainWorker(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := job.ValidateName("id", id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	rep, err := s.d.Broker.Ask(ctx, id, broker.VerbDrain, broker.ControlRequest{})
	if errors.Is(err, broker.ErrNoWorker) {
		return notFound("no live worker %s answered; `jinn workers` lists the live ones", id)
	}
	if err != nil {
		return err
	}
	if rep.Error != "" {
		return errorf(http.StatusInternalServerError, "internal", "worker %s: %s", id, rep.Error)
	}
	wk, err := s.d.Store.Worker(r.Context(), id)
	if err != nil {
		// It answered, so it drains; its heartbeat may just have ended.
		wk = &job.Worker{ID: id, State: job.WorkerDraining}
	}
	writeJSON(w, http.StatusAccepted, wk)
	return nil
}
