package intake

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Auth: bearer tokens, each naming a user and a role. The tokens file has one
// token a line (docs/auth.md):
//
//	# token                    user   role
//	sha256:<64 hex digits>     alice  user
//	sha256:<64 hex digits>     ops    operator
//
// A token may also be written in clear, but the sha256: form keeps the file
// from being a store of secrets: the intake only ever compares hashes, in
// constant time. Auth is off when the intake has no tokens file.

// Role is what a token may do; each role may do all a lower one may.
type Role int

const (
	// RoleNone marks the routes anyone may call without a token.
	RoleNone Role = iota
	// RoleUser submits jobs and sees and kills its own jobs.
	RoleUser
	// RoleOperator also sees every job and manages clusters, commands,
	// applications and workers.
	RoleOperator
	// RoleAdmin may do everything.
	RoleAdmin
)

var roleNames = map[Role]string{RoleNone: "none", RoleUser: "user", RoleOperator: "operator", RoleAdmin: "admin"}

func (r Role) String() string { return roleNames[r] }

// ParseRole reads user, operator or admin.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if r != RoleNone && n == s {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q: use user, operator or admin", s)
}

// Identity is who a request's token says it comes from.
type Identity struct {
	User string
	Role Role
}

type identityKey struct{}

// IdentityFrom returns the identity the auth middleware put into ctx; false
// when auth is off.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

type tokenEntry struct {
	hash [sha256.Size]byte
	id   Identity
}

// Auth checks bearer tokens against a tokens file. It is safe for
// concurrent use; Reload swaps the tokens at once.
type Auth struct {
	path string
	log  hclog.Logger

	mu      sync.RWMutex
	tokens  []tokenEntry
	modTime time.Time
	size    int64
}

// LoadAuth reads the tokens file at path.
func LoadAuth(path string, log hclog.Logger) (*Auth, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	a := &Auth{path: path, log: log.Named("auth")}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// HashToken returns the form of token to write into a tokens file.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(h[:])
}

// Reload reads the tokens file again. On an error the tokens in use stay.
func (a *Auth) Reload() error {
	st, err := os.Stat(a.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	tokens, clear, err := parseTokens(data)
	if err != nil {
		return fmt.Errorf("tokens file %s: %w", a.path, err)
	}
	if clear > 0 {
		a.log.Warn("the tokens file holds tokens in clear; write `sha256:<hex>` (jinn token prints it) so the file is no secret", "file", a.path, "clear", clear)
	}
	a.mu.Lock()
	a.tokens, a.modTime, a.size = tokens, st.ModTime(), st.Size()
	a.mu.Unlock()
	a.log.Info("tokens loaded", "file", a.path, "tokens", len(tokens))
	return nil
}

// Watch reloads the tokens file whenever its modification time or size
// changes, checking every interval, until ctx ends.
func (a *Auth) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(a.path)
		if err != nil {
			continue
		}
		a.mu.RLock()
		same := st.ModTime().Equal(a.modTime) && st.Size() == a.size
		a.mu.RUnlock()
		if !same {
			if err := a.Reload(); err != nil {
				a.log.Error("reload the tokens file; the old tokens stay in use", "error", err)
			}
		}
	}
}

// parseTokens reads the lines "TOKEN USER ROLE"; it returns how many tokens
// were given in clear.
func parseTokens(data []byte) ([]tokenEntry, int, error) {
	var out []tokenEntry
	clear := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, 0, fmt.Errorf("line %d: want `TOKEN USER ROLE`, got %d fields", n, len(f))
		}
		var e tokenEntry
		if hx, ok := strings.CutPrefix(f[0], "sha256:"); ok {
			b, err := hex.DecodeString(hx)
			if err != nil || len(b) != sha256.Size {
				return nil, 0, fmt.Errorf("line %d: sha256: must be followed by 64 hex digits", n)
			}
			copy(e.hash[:], b)
		} else {
			if len(f[0]) < 16 {
				return nil, 0, fmt.Errorf("line %d: a token must have at least 16 characters", n)
			}
			e.hash = sha256.Sum256([]byte(f[0]))
			clear++
		}
		if err := job.ValidateUser("user", f[1]); err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", n, err)
		}
		role, err := ParseRole(f[2])
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", n, err)
		}
		e.id = Identity{User: f[1], Role: role}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if len(out) == 0 {
		return nil, 0, errors.New("no tokens: add lines `sha256:<hex> USER ROLE` (or start without --tokens to turn auth off)")
	}
	return out, clear, nil
}

// Identify returns the identity of a token. Every entry is compared, in
// constant time, so the answer's timing says nothing of the tokens.
func (a *Auth) Identify(token string) (Identity, bool) {
	h := sha256.Sum256([]byte(token))
	a.mu.RLock()
	defer a.mu.RUnlock()
	var found Identity
	ok := 0
	for _, e := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found, ok = e.id, 1
		}
	}
	return found, ok == 1
}

// access is what a route needs.
type access struct {
	role Role
	// own: a user may call it only for a job of theirs (the job is named by
	// the path's {id}, or by ?job= on the events stream).
	own bool
}

// routeAccess says who may call each route registered in routes(); a test
// checks it names every one. Patterns outside /api/ that are not here (the
// web UI's pages and files) are open: they hold no data, their API calls
// carry the token. An /api/ pattern missing here needs an admin.
var routeAccess = map[string]access{
	"GET /healthz":             {RoleNone, false},
	"GET /readyz":              {RoleNone, false},
	"GET /metrics":             {RoleNone, false},
	"GET /api/v1/openapi.json": {RoleNone, false},

	"POST /api/v1/jobs":                      {RoleUser, false}, // the user is the token's (submit)
	"GET /api/v1/jobs":                       {RoleUser, false}, // a user's list is their own jobs
	"GET /api/v1/jobs/{id}":                  {RoleUser, true},
	"DELETE /api/v1/jobs/{id}":               {RoleUser, true},
	"GET /api/v1/jobs/{id}/output":           {RoleUser, true},
	"GET /api/v1/jobs/{id}/output/{path...}": {RoleUser, true},
	"GET /api/v1/jobs/{id}/logs":             {RoleUser, true},
	"GET /api/v1/jobs/{id}/history":          {RoleUser, true},
	"GET /api/v1/events":                     {RoleUser, true}, // every job's events: operator

	"GET /api/v1/clusters":               {RoleUser, false},
	"GET /api/v1/clusters/{name}":        {RoleUser, false},
	"PUT /api/v1/clusters/{name}":        {RoleOperator, false},
	"PATCH /api/v1/clusters/{name}":      {RoleOperator, false},
	"DELETE /api/v1/clusters/{name}":     {RoleOperator, false},
	"GET /api/v1/commands":               {RoleUser, false},
	"GET /api/v1/commands/{name}":        {RoleUser, false},
	"PUT /api/v1/commands/{name}":        {RoleOperator, false},
	"PATCH /api/v1/commands/{name}":      {RoleOperator, false},
	"DELETE /api/v1/commands/{name}":     {RoleOperator, false},
	"GET /api/v1/applications":           {RoleUser, false},
	"GET /api/v1/applications/{name}":    {RoleUser, false},
	"PUT /api/v1/applications/{name}":    {RoleOperator, false},
	"PATCH /api/v1/applications/{name}":  {RoleOperator, false},
	"DELETE /api/v1/applications/{name}": {RoleOperator, false},
	"GET /api/v1/workers":                {RoleOperator, false}, // lists every user's running jobs
	"POST /api/v1/workers/{id}/drain":    {RoleOperator, false},
	"GET /api/v1/pools":                  {RoleUser, false},
	"GET /api/v1/pools/{name}":           {RoleUser, false},
	"/api/v1/":                           {RoleUser, false}, // unknown API routes: 404 to a known caller
}

func accessOf(pattern string) access {
	if a, ok := routeAccess[pattern]; ok {
		return a
	}
	p := pattern
	if _, path, ok := strings.Cut(pattern, " "); ok {
		p = path
	}
	if strings.HasPrefix(p, "/api/") {
		return access{role: RoleAdmin}
	}
	return access{role: RoleNone}
}

func unauthorized(format string, args ...any) *apiError {
	return errorf(http.StatusUnauthorized, "unauthorized", format, args...)
}

func forbidden(format string, args ...any) *apiError {
	return errorf(http.StatusForbidden, "forbidden", format, args...)
}

// authorize checks the request's token against the route it goes to and
// returns the request carrying the caller's identity.
func (s *Server) authorize(r *http.Request) (*http.Request, error) {
	_, pattern := s.mux.Handler(r)
	need := accessOf(pattern)
	if need.role == RoleNone {
		return r, nil
	}
	h := r.Header.Get("Authorization")
	if t := r.URL.Query().Get("access_token"); h == "" && t != "" && pattern == "GET /api/v1/events" {
		// A browser's EventSource cannot send headers (RFC 6750 2.3).
		h = "Bearer " + t
	}
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, unauthorized("this API needs a bearer token: send `Authorization: Bearer TOKEN` (the CLI: --token or JINN_TOKEN); ask an operator of jinn for one")
	}
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, unauthorized("the Authorization header must be `Bearer TOKEN`")
	}
	id, ok := s.d.Auth.Identify(token)
	if !ok {
		return nil, unauthorized("the token is not known: check it, or ask an operator of jinn for a new one")
	}
	if id.Role < need.role {
		return nil, forbidden("%s %s needs the %s role; %s has the role %s", r.Method, r.URL.Path, need.role, id.User, id.Role)
	}
	r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
	if id.Role >= RoleOperator {
		return r, nil
	}
	switch pattern {
	case "GET /api/v1/jobs":
		// A user lists their own jobs.
		q := r.URL.Query()
		if u := q.Get("user"); u != "" && u != id.User {
			return nil, forbidden("user %s may list only their own jobs, not those of %s: drop ?user=", id.User, u)
		}
		q.Set("user", id.User)
		r.URL.RawQuery = q.Encode()
	case "GET /api/v1/events":
		if r.URL.Query().Get("job") == "" {
			return nil, forbidden("the events of every job need the operator role; user %s may follow one job of theirs with ?job=ID", id.User)
		}
		if err := s.checkOwner(r, r.URL.Query().Get("job")); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// checkOwner refuses a user the events of a job of another user. A job
// that cannot be read passes: its handler answers 404.
func (s *Server) checkOwner(r *http.Request, id string) error {
	if job.ValidateID("job", id) != nil {
		return nil
	}
	j, err := s.d.Store.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) && s.d.Archive != nil {
		j, err = store.ArchivedJob(r.Context(), s.d.Archive, id)
	}
	if err != nil {
		return nil
	}
	return authorizeJob(r, j)
}

// authorizeJob refuses a user a job of another user. lookup calls it, so
// every route of one job checks it.
func authorizeJob(r *http.Request, j *job.Job) error {
	id, ok := IdentityFrom(r.Context())
	if !ok || id.Role >= RoleOperator || j.User == id.User {
		return nil
	}
	return forbidden("job %s belongs to another user; %s may see and kill only their own jobs", j.ID, id.User)
}

// authorizeSubmit sets the user of a request from the token: a user cannot
// submit as someone else; operators and admins may name any user.
func authorizeSubmit(r *http.Request, req *job.Request) error {
	id, ok := IdentityFrom(r.Context())
	if !ok {
		return nil
	}
	if req.User != "" && req.User != id.User && id.Role < RoleOperator {
		e := forbidden("user %s cannot submit a job as %s: leave user out (it is taken from the token) or use an operator's token", id.User, req.User)
		e.Field = "user"
		return e
	}
	if req.User == "" {
		req.User = id.User
	}
	return nil
}

// serveAuthorized is ServeHTTP with auth on.
func (s *Server) serveAuthorized(w http.ResponseWriter, r *http.Request) {
	r, err := s.authorize(r)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jinn"`)
		}
		writeError(w, err)
		return
	}
	s.mux.ServeHTTP(w, r)
}
