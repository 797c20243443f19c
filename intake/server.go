package intake

import (
	"context"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/broker"
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
	Log      hclog.Logger
}

// Server serves the API.
type Server struct {
	d   Deps
	log hclog.Logger
	mux *http.ServeMux
	// FollowPoll is how often a followed log is read while its job runs.
	FollowPoll time.Duration
}

// New returns the API handler.
func New(d Deps) *Server {
	s := &Server{d: d, log: d.Log.Named("intake"), mux: http.NewServeMux(), FollowPoll: 200 * time.Millisecond}
	s.routes()
	return s
}

func (s *Server) routes() {
	const v1 = "/api/v1"
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
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

	h("GET "+v1+"/workers", s.workers)
	h("GET /healthz", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	})
	h("GET /readyz", s.ready)
	h(v1+"/", func(w http.ResponseWriter, r *http.Request) error {
		return notFound("no API route %s %s", r.Method, r.URL.Path)
	})
	h("GET /{$}", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"name": "jinn", "api": v1})
		return nil
	})
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

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
