package intake

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Applications are software commands link to (their files and setup are
// installed into each job): the same CRUD routes as clusters and commands,
// except that an application a command still links cannot be deleted.

type applicationKind struct{}

func (applicationKind) name() string                             { return store.KindApplication }
func (applicationKind) plural() string                           { return "applications" }
func (applicationKind) list(r *store.Registry) []job.Application { return r.Applications() }
func (applicationKind) get(r *store.Registry, n string) (job.Application, uint64, error) {
	return r.Application(n)
}
func (applicationKind) put(ctx context.Context, r *store.Registry, v job.Application, rev uint64) (uint64, error) {
	return r.PutApplication(ctx, v, rev)
}
func (applicationKind) nameOf(v *job.Application) *string { return &v.Name }

// applicationRoutes adds /applications.
func (s *Server) applicationRoutes(h func(string, func(http.ResponseWriter, *http.Request) error), v1 string) {
	apps := entityAPI[job.Application]{s: s, k: applicationKind{}}
	h("GET "+v1+"/applications", apps.list)
	h("GET "+v1+"/applications/{name}", apps.get)
	h("PUT "+v1+"/applications/{name}", apps.put)
	h("PATCH "+v1+"/applications/{name}", apps.patch)
	h("DELETE "+v1+"/applications/{name}", func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		var users []string
		for _, c := range s.d.Registry.Commands() {
			if slices.Contains(c.Applications, name) {
				users = append(users, c.Name)
			}
		}
		if len(users) > 0 {
			return conflict("application %s is linked by command %s: unlink it there first", name, strings.Join(users, ", "))
		}
		return apps.del(w, r)
	})
}
