package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func server(t *testing.T) *httptest.Server {
	t.Helper()
	u, err := New(hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	u.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// Every page renders from its template, with its script, the top bar and a
// policy that lets nothing load from elsewhere.
func TestPages(t *testing.T) {
	srv := server(t)
	for _, c := range []struct{ path, script, contains string }{
		{"/", "jobs.js", `<option selected>RUNNING</option>`},
		{"/jobs/abc-1", "job.js", `data-id="abc-1"`},
		{"/clusters", "entities.js", `data-statuses="UP,OUT_OF_SERVICE,TERMINATED"`},
		{"/commands", "entities.js", `data-statuses="ACTIVE,DEPRECATED,INACTIVE"`},
		{"/workers", "workers.js", `id="workers"`},
		{"/pools", "pools.js", `id="pools"`},
	} {
		path := c.path
		if path == "/" {
			path = "/?status=RUNNING&user=a%22b"
		}
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
		for _, want := range []string{`src="/static/` + c.script + `"`, `href="/static/jinn.css"`, c.contains} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: no %s in\n%s", c.path, want, body)
			}
		}
		if c.path == "/" && !strings.Contains(body, `value="a&#34;b"`) {
			t.Errorf("the user filter is not escaped back into the form:\n%s", body)
		}
	}
	if resp, _ := get(t, srv.URL+"/jobs/a.b"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a job page for an invalid id: %d", resp.StatusCode)
	}
}

// The static files are served from the embedded directory with their types
// and an ETag that makes a reload cheap.
func TestStatic(t *testing.T) {
	srv := server(t)
	for name, typ := range map[string]string{
		"api.js": "text/javascript", "dom.js": "text/javascript", "jobs.js": "text/javascript", "job.js": "text/javascript",
		"entities.js": "text/javascript", "workers.js": "text/javascript", "pools.js": "text/javascript",
		"jinn.css": "text/css", "favicon.svg": "image/svg+xml",
	} {
		resp, body := get(t, srv.URL+"/static/"+name)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), typ) || body == "" {
			t.Fatalf("%s: %d %q (%d bytes)", name, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		etag := resp.Header.Get("ETag")
		if resp, _ := get(t, srv.URL+"/static/"+name, "If-None-Match", etag); etag == "" || resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s: revalidation with ETag %q: %d", name, etag, resp.StatusCode)
		}
	}
	if resp, _ := get(t, srv.URL+"/static/nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/static/../ui.go"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a path outside static/: %d", resp.StatusCode)
	}
}
