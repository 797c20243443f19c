package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// kind adapts one kind of configuration entity to the generic CRUD routes.
type kind[T any] interface {
	name() string   // "cluster"
	plural() string // "clusters"
	list(r *store.Registry) []T
	get(r *store.Registry, name string) (T, uint64, error)
	put(ctx context.Context, r *store.Registry, v T, rev uint64) (uint64, error)
	nameOf(v *T) *string
}

type clusterKind struct{}

func (clusterKind) name() string                         { return store.KindCluster }
func (clusterKind) plural() string                       { return "clusters" }
func (clusterKind) list(r *store.Registry) []job.Cluster { return r.Clusters() }
func (clusterKind) get(r *store.Registry, n string) (job.Cluster, uint64, error) {
	return r.Cluster(n)
}
func (clusterKind) put(ctx context.Context, r *store.Registry, v job.Cluster, rev uint64) (uint64, error) {
	return r.PutCluster(ctx, v, rev)
}
func (clusterKind) nameOf(v *job.Cluster) *string { return &v.Name }

type commandKind struct{}

func (commandKind) name() string                         { return store.KindCommand }
func (commandKind) plural() string                       { return "commands" }
func (commandKind) list(r *store.Registry) []job.Command { return r.Commands() }
func (commandKind) get(r *store.Registry, n string) (job.Command, uint64, error) {
	return r.Command(n)
}
func (commandKind) put(ctx context.Context, r *store.Registry, v job.Command, rev uint64) (uint64, error) {
	return r.PutCommand(ctx, v, rev)
}
func (commandKind) nameOf(v *job.Command) *string { return &v.Name }

// entityAPI serves list, get, put, patch and delete for one kind.
type entityAPI[T any] struct {
	s *Server
	k kind[T]
}

func (a entityAPI[T]) pathName(r *http.Request) (string, error) {
	n := r.PathValue("name")
	if err := job.ValidateName("name", n); err != nil {
		return "", err
	}
	return n, nil
}

func (a entityAPI[T]) lookup(r *http.Request) (T, uint64, error) {
	n, err := a.pathName(r)
	if err != nil {
		var zero T
		return zero, 0, err
	}
	v, rev, err := a.k.get(a.s.d.Registry, n)
	if errors.Is(err, store.ErrNoEntity) {
		return v, 0, notFound("no %s %s", a.k.name(), n)
	}
	return v, rev, err
}

func (a entityAPI[T]) list(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{a.k.plural(): a.k.list(a.s.d.Registry)})
	return nil
}

func (a entityAPI[T]) get(w http.ResponseWriter, r *http.Request) error {
	v, _, err := a.lookup(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// put creates or replaces an entity; the name in the body, if any, must be
// the one in the path.
func (a entityAPI[T]) put(w http.ResponseWriter, r *http.Request) error {
	n, err := a.pathName(r)
	if err != nil {
		return err
	}
	var v T
	if err := decode(w, r, &v); err != nil {
		return err
	}
	name := a.k.nameOf(&v)
	if *name == "" {
		*name = n
	}
	if *name != n {
		return badRequest("name", "the body names %s %q but the path names %q", a.k.name(), *name, n)
	}
	_, existed, _ := a.k.get(a.s.d.Registry, n)
	if _, err := a.k.put(r.Context(), a.s.d.Registry, v, 0); err != nil {
		return err
	}
	v, _, _ = a.k.get(a.s.d.Registry, n)
	status := http.StatusCreated
	if existed > 0 {
		status = http.StatusOK
	}
	writeJSON(w, status, v)
	return nil
}

// patch changes some fields (e.g. {"status":"OUT_OF_SERVICE"}), as a merge of
// the body onto the stored entity, refused if it changed meanwhile.
func (a entityAPI[T]) patch(w http.ResponseWriter, r *http.Request) error {
	cur, rev, err := a.lookup(r)
	if err != nil {
		return err
	}
	var patch map[string]json.RawMessage
	if err := decode(w, r, &patch); err != nil {
		return err
	}
	if raw, ok := patch["name"]; ok {
		var n string
		if json.Unmarshal(raw, &n) != nil || n != *a.k.nameOf(&cur) {
			return badRequest("name", "a %s cannot be renamed", a.k.name())
		}
	}
	var merged map[string]json.RawMessage
	b, _ := json.Marshal(cur)
	_ = json.Unmarshal(b, &merged)
	for k, v := range patch {
		merged[k] = v
	}
	b, _ = json.Marshal(merged)
	var next T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&next); err != nil {
		return decodeErr(err)
	}
	if _, err := a.k.put(r.Context(), a.s.d.Registry, next, rev); err != nil {
		if errors.Is(err, store.ErrRevision) {
			return conflict("%s %s changed while it was patched; retry", a.k.name(), *a.k.nameOf(&cur))
		}
		return err
	}
	next, _, _ = a.k.get(a.s.d.Registry, *a.k.nameOf(&cur))
	writeJSON(w, http.StatusOK, next)
	return nil
}

func (a entityAPI[T]) del(w http.ResponseWriter, r *http.Request) error {
	v, _, err := a.lookup(r)
	if err != nil {
		return err
	}
	if err := a.s.d.Registry.Delete(r.Context(), a.k.name(), *a.k.nameOf(&v)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
