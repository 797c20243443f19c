package intake

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// routeServer is a Server with no parts: enough to list its routes.
func routeServer(t *testing.T) *Server {
	t.Helper()
	return New(Deps{Log: hclog.NewNullLogger()})
}

// apiPattern reports whether a registered pattern is an /api/v1 operation
// the document must describe (the catch-all is not one).
func apiPattern(p string) (method, path string, ok bool) {
	method, path, found := strings.Cut(p, " ")
	if !found || !strings.HasPrefix(path, "/api/v1/") {
		return "", "", false
	}
	return method, strings.TrimPrefix(path, "/api/v1"), true
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	s := routeServer(t)
	registered := map[string]bool{}
	for _, p := range s.Patterns() {
		if m, path, ok := apiPattern(p); ok {
			registered[m+" "+path] = true
		}
	}
	documented := map[string]bool{}
	for _, op := range apiOps {
		k := op.method + " " + op.path
		if documented[k] {
			t.Errorf("%s is documented twice", k)
		}
		documented[k] = true
		if !registered[k] {
			t.Errorf("the document describes %s /api/v1%s, which no handler serves", op.method, op.path)
		}
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is not in the OpenAPI document: add it to apiOps in openapi.go", k)
		}
	}
}

func TestAuthTableCoversEveryRoute(t *testing.T) {
	s := routeServer(t)
	registered := map[string]bool{}
	for _, p := range s.Patterns() {
		registered[p] = true
		if _, ok := routeAccess[p]; !ok {
			t.Errorf("route %q has no entry in routeAccess (auth.go): say which role may call it", p)
		}
	}
	for p := range routeAccess {
		if !registered[p] && p != "GET /metrics" { // /metrics may be registered outside h
			t.Errorf("routeAccess names %q, which routes() does not register", p)
		}
	}
}

func TestOpenAPIServedAndValid(t *testing.T) {
	s := routeServer(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	if err := os.WriteFile(file, []byte(HashToken("a-token-of-sixteen+")+" alice user\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadAuth(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.d.Auth = a // the document is open even with auth on
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", rec.Code, rec.Body)
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	body := rec.Body.Bytes()
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	for _, name := range []string{"Job", "Request", "Cluster", "Command", "Application", "Worker", "Pool", "Error"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("no schema %s", name)
		}
	}
	for _, m := range regexp.MustCompile(`"#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(string(body), -1) {
		if doc.Components.Schemas[m[1]] == nil {
			t.Errorf("$ref to a missing schema %s", m[1])
		}
	}
	if doc.Paths["/jobs/{id}/output/{path}"]["get"] == nil || doc.Paths["/jobs"]["post"]["requestBody"] == nil {
		t.Errorf("paths: %v", doc.Paths)
	}
	job := doc.Components.Schemas["Job"].(map[string]any)["properties"].(map[string]any)
	if job["status"] == nil || job["request"] == nil || job["exitCode"] == nil {
		t.Errorf("Job schema: %v", job)
	}
}

func TestParseTokens(t *testing.T) {
	good := "# comment\n\n" + HashToken("secret-one-1234567") + " alice user\n" +
		"clear-token-0123456789 ops operator\n"
	entries, clear, err := parseTokens([]byte(good))
	if err != nil || len(entries) != 2 || clear != 1 {
		t.Fatalf("parse: %v %d %v", entries, clear, err)
	}
	for _, bad := range []string{
		"", "# only a comment\n",
		"sha256:abc alice user\n",
		HashToken("x") + " alice root\n",
		HashToken("x") + " alice\n",
		"short alice user\n",
		HashToken("x") + " bad/user! user\n",
	} {
		if _, _, err := parseTokens([]byte(bad)); err == nil {
			t.Errorf("parseTokens(%q) took it", bad)
		}
	}
	a := &Auth{tokens: entries}
	if id, ok := a.Identify("secret-one-1234567"); !ok || id.User != "alice" || id.Role != RoleUser {
		t.Errorf("identify: %v %v", id, ok)
	}
	if id, ok := a.Identify("clear-token-0123456789"); !ok || id.Role != RoleOperator {
		t.Errorf("identify clear: %v %v", id, ok)
	}
	if _, ok := a.Identify("secret-one-1234568"); ok {
		t.Error("an unknown token identified")
	}
}
