package intake

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// pools answers GET /pools: every pool the autoscaler sizes, with its last
// ?decisions= decisions (default 10, at most store.DecisionsKept).
func (s *Server) pools(w http.ResponseWriter, r *http.Request) error {
	n, err := decisionsParam(r, 10)
	if err != nil {
		return err
	}
	list, err := s.d.Store.Pools(r.Context(), n)
	if err != nil {
		return err
	}
	if list == nil {
		list = []job.Pool{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"pools": list})
	return nil
}

// pool answers GET /pools/{name}: one pool with its last ?decisions=
// decisions (default 50).
func (s *Server) pool(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := job.ValidateName("pool", name); err != nil {
		return err
	}
	n, err := decisionsParam(r, 50)
	if err != nil {
		return err
	}
	p, err := s.d.Store.Pool(r.Context(), name, n)
	if errors.Is(err, store.ErrNoPool) {
		return notFound("the autoscaler has no pool %s: it records the pools it sizes (jinn up --autoscale, jinn scheduler --autoscale); `jinn pools` lists them", name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func decisionsParam(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("decisions")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > store.DecisionsKept {
		return 0, badRequest("decisions", "decisions must be a number from 0 to %d", store.DecisionsKept)
	}
	return n, nil
}
