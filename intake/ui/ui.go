// Package ui is jinn's web UI, served by the intake: a few pages, each an
// html/template shell that a little plain JavaScript fills from the HTTP API
// (/api/v1) and keeps current with the API's server-sent events
// (/api/v1/events). Everything is embedded with go:embed: no build step, no
// CDN, nothing fetched from elsewhere (the Content-Security-Policy says so).
//
// The pages hold no logic of the fleet and no state: they are a client of
// the API like the CLI. ui imports job (names and statuses) and never
// worker or scheduler.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/job"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// csp allows only the intake's own scripts, styles and API: the UI loads
// nothing from elsewhere and runs no inline script.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// navItem is one link of the top bar.
type navItem struct {
	Page, Label, Href string
}

var nav = []navItem{
	{"jobs", "Jobs", "/"},
	{"clusters", "Clusters", "/clusters"},
	{"commands", "Commands", "/commands"},
	{"workers", "Workers", "/workers"},
	{"pools", "Pools", "/pools"},
}

// page is what a shell template shows.
type page struct {
	Page   string // its nav key
	Title  string
	Script string // its module under /static/
	Nav    []navItem
	ID     string     // the job of the job page
	Filter url.Values // the jobs page's filters, from the query
	// Statuses are the choices of a status filter or a status change.
	Statuses []string
	Kind     string // "clusters" or "commands" on the entities page
}

// UI serves the pages and their static files.
type UI struct {
	pages  map[string]*template.Template // by template file
	static map[string]staticFile         // by path under static/
	log    hclog.Logger
}

type staticFile struct {
	data []byte
	etag string
}

// New parses the embedded templates and indexes the static files. It fails
// only if the embedded files are broken, which the package's tests catch.
func New(log hclog.Logger) (*UI, error) {
	u := &UI{pages: map[string]*template.Template{}, static: map[string]staticFile{}, log: log.Named("ui")}
	for _, name := range []string{"jobs", "job", "entities", "workers", "pools"} {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", name, err)
		}
		u.pages[name] = t
	}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		u.static[strings.TrimPrefix(p, "static/")] = staticFile{data: data, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui static files: %w", err)
	}
	return u, nil
}

// Register adds the UI's routes to mux: the pages at /, /jobs/{id},
// /clusters, /commands, /workers and /pools, and their files under /static/.
func (u *UI) Register(mux *http.ServeMux) {
	statuses := func(ss ...string) []string { return ss }
	jobStatuses := make([]string, len(job.Statuses))
	for i, s := range job.Statuses {
		jobStatuses[i] = string(s)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		u.render(w, "jobs", page{Page: "jobs", Title: "Jobs", Script: "jobs.js", Filter: r.URL.Query(), Statuses: jobStatuses})
	})
	mux.HandleFunc("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := job.ValidateID("id", id); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		u.render(w, "job", page{Page: "jobs", Title: "Job " + id, Script: "job.js", ID: id})
	})
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {
		u.render(w, "entities", page{Page: "clusters", Title: "Clusters", Script: "entities.js", Kind: "clusters",
			Statuses: statuses(string(job.ClusterUp), string(job.ClusterOutOfService), string(job.ClusterTerminated))})
	})
	mux.HandleFunc("GET /commands", func(w http.ResponseWriter, r *http.Request) {
		u.render(w, "entities", page{Page: "commands", Title: "Commands", Script: "entities.js", Kind: "commands",
			Statuses: statuses(string(job.CommandActive), string(job.CommandDeprecated), string(job.CommandInactive))})
	})
	mux.HandleFunc("GET /workers", func(w http.ResponseWriter, r *http.Request) {
		u.render(w, "workers", page{Page: "workers", Title: "Workers", Script: "workers.js"})
	})
	mux.HandleFunc("GET /pools", func(w http.ResponseWriter, r *http.Request) {
		u.render(w, "pools", page{Page: "pools", Title: "Pools", Script: "pools.js"})
	})
	mux.HandleFunc("GET /static/{file...}", u.serveStatic)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
}

// render writes a page, or a 500 if its template fails (it is rendered to
// a buffer first, so a failure never leaves half a page).
func (u *UI) render(w http.ResponseWriter, tmpl string, p page) {
	p.Nav = nav
	var buf bytes.Buffer
	if err := u.pages[tmpl].ExecuteTemplate(&buf, "layout", p); err != nil {
		u.log.Error("render page", "page", tmpl, "error", err)
		http.Error(w, "the page could not be rendered; the intake's log says why", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	securityHeaders(h)
	_, _ = w.Write(buf.Bytes())
}

// serveStatic serves an embedded file. Browsers revalidate it on every
// load (no-cache) and get a 304 while its content, hence its ETag, is the
// same: an upgraded intake is never shown with yesterday's script.
func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	f, ok := u.static[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	securityHeaders(h)
	// The extension decides the type (.js as text/javascript, which module
	// scripts require), never sniffing.
	http.ServeContent(w, r, path.Base(name), time.Time{}, bytes.NewReader(f.data))
}

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}
