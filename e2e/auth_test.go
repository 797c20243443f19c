package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/intake"
	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
)

// The tokens of the auth tests: two users, an operator and an admin.
const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-0123456789ab"
	opsToken   = "ops-token-0123456789ab"
	rootToken  = "root-token-0123456789a"
)

// withAuth turns auth on with the tokens above, written hashed.
func withAuth(t *testing.T) option {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens")
	lines := "# test tokens\n" +
		intake.HashToken(aliceToken) + " alice user\n" +
		intake.HashToken(bobToken) + " bob user\n" +
		intake.HashToken(opsToken) + " ops operator\n" +
		intake.HashToken(rootToken) + " root admin\n"
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := intake.LoadAuth(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *fleet.Config) { c.Auth = a }
}

// want checks a status and, for 401 and 403, the error body.
func (s *sys) want(token, method, path string, body any, status int) {
	s.t.Helper()
	var e apiErr
	var out any = &e
	if status < 400 {
		out = nil
	}
	resp := s.as(token, method, path, body, out)
	if resp.StatusCode != status {
		s.t.Errorf("%s %s as %q: status %d, want %d (%+v)", method, path, token, resp.StatusCode, status, e.Error)
		return
	}
	switch status {
	case http.StatusUnauthorized:
		if e.Error.Code != "unauthorized" || e.Error.Message == "" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			s.t.Errorf("%s %s: 401 without its body or WWW-Authenticate: %+v %q", method, path, e.Error, resp.Header.Get("WWW-Authenticate"))
		}
	case http.StatusForbidden:
		if e.Error.Code != "forbidden" || e.Error.Message == "" {
			s.t.Errorf("%s %s: 403 without its body: %+v", method, path, e.Error)
		}
	}
}

// Every registered route either needs a token (401 without one, and with an
// unknown one) or is one of the documented open ones.
func TestAuthEveryRouteNeedsAToken(t *testing.T) {
	s := start(t, withAuth(t), withWorkers(-1))
	open := map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true, "GET /api/v1/openapi.json": true}
	fill := strings.NewReplacer("{id}", "j1", "{name}", "local", "{path...}", "stdout")
	patterns := s.Intake.Patterns()
	if len(patterns) < 20 {
		t.Fatalf("only %d routes: %v", len(patterns), patterns)
	}
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = "GET", p+"anything"
		}
		path = fill.Replace(path)
		if open[p] {
			if resp := s.as("", method, path, nil, nil); resp.StatusCode == http.StatusUnauthorized {
				t.Errorf("%s is open but answered 401", p)
			}
			continue
		}
		s.want("", method, path, nil, http.StatusUnauthorized)
		s.want("not-a-known-token-at-all", method, path, nil, http.StatusUnauthorized)
	}
	// Malformed headers.
	for _, h := range []string{"Basic YWxpY2U6eA==", "Bearer", "Bearer "} {
		req, _ := http.NewRequest("GET", s.URL+"/api/v1/jobs", nil)
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d", h, resp.StatusCode)
		}
	}
	// The web UI's pages and files are open; their API calls carry the token.
	if resp := s.as("", "GET", "/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET / without a token: %d", resp.StatusCode)
	}
}

// Users see, follow and kill only their own jobs and submit only as
// themselves; operators and admins see every job.
func TestAuthJobs(t *testing.T) {
	s := start(t, withAuth(t))
	var j job.Job
	if resp := s.as(aliceToken, "POST", "/api/v1/jobs", bash("echo hi"), &j); resp.StatusCode != http.StatusAccepted || j.User != "alice" {
		t.Fatalf("alice submits: %d %+v", resp.StatusCode, j)
	}
	s.wait(j.ID, 20*time.Second)
	// A user cannot submit as someone else; an operator can.
	as := bash("echo as")
	as.User = "bob"
	s.want(aliceToken, "POST", "/api/v1/jobs", as, http.StatusForbidden)
	var opJob job.Job
	if resp := s.as(opsToken, "POST", "/api/v1/jobs", as, &opJob); resp.StatusCode != http.StatusAccepted || opJob.User != "bob" {
		t.Fatalf("an operator submits as bob: %d %+v", resp.StatusCode, opJob)
	}
	self := bash("echo self")
	self.User = "alice"
	s.want(aliceToken, "POST", "/api/v1/jobs", self, http.StatusAccepted)

	id := j.ID
	routes := []struct{ method, path string }{
		{"GET", "/api/v1/jobs/" + id},
		{"GET", "/api/v1/jobs/" + id + "/output"},
		{"GET", "/api/v1/jobs/" + id + "/output/stdout"},
		{"GET", "/api/v1/jobs/" + id + "/logs"},
		{"GET", "/api/v1/jobs/" + id + "/history"},
	}
	for _, r := range routes {
		s.want(bobToken, r.method, r.path, nil, http.StatusForbidden)
		s.want(aliceToken, r.method, r.path, nil, http.StatusOK)
		s.want(opsToken, r.method, r.path, nil, http.StatusOK)
		s.want(rootToken, r.method, r.path, nil, http.StatusOK)
	}
	// Kill: bob may not; alice reaches the handler (her job is finished: 409).
	s.want(bobToken, "DELETE", "/api/v1/jobs/"+id, nil, http.StatusForbidden)
	s.want(aliceToken, "DELETE", "/api/v1/jobs/"+id, nil, http.StatusConflict)
	s.want(opsToken, "DELETE", "/api/v1/jobs/"+id, nil, http.StatusConflict)
	// An unknown job is 404 to anyone with a token.
	s.want(bobToken, "GET", "/api/v1/jobs/nope", nil, http.StatusNotFound)

	// Lists: a user's are their own jobs.
	var list struct{ Jobs []job.Job }
	s.as(aliceToken, "GET", "/api/v1/jobs", nil, &list)
	if len(list.Jobs) != 2 {
		t.Errorf("alice lists %d jobs, want her 2: %+v", len(list.Jobs), list.Jobs)
	}
	for _, lj := range list.Jobs {
		if lj.User != "alice" {
			t.Errorf("alice sees a job of %s", lj.User)
		}
	}
	s.want(aliceToken, "GET", "/api/v1/jobs?user=bob", nil, http.StatusForbidden)
	s.want(aliceToken, "GET", "/api/v1/jobs?user=alice", nil, http.StatusOK)
	list.Jobs = nil
	s.as(opsToken, "GET", "/api/v1/jobs", nil, &list)
	if len(list.Jobs) != 3 {
		t.Errorf("the operator lists %d jobs, want 3", len(list.Jobs))
	}

	// Events: one's own job's stream; every job's needs an operator.
	s.want(bobToken, "GET", "/api/v1/events?job="+id, nil, http.StatusForbidden)
	s.want(aliceToken, "GET", "/api/v1/events", nil, http.StatusForbidden)
	s.want("", "GET", "/api/v1/jobs?access_token="+opsToken, nil, http.StatusUnauthorized) // only the event stream takes it
	for _, c := range []struct {
		token, query string
	}{{aliceToken, "?job=" + id}, {opsToken, ""}, {"", "?access_token=" + opsToken}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/v1/events"+c.query, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Errorf("events%s: %d %s", c.query, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		cancel()
		resp.Body.Close()
	}

	// The Go client passes the token and reports the error body.
	_, err := client.New(s.URL, client.WithToken(bobToken)).Get(context.Background(), id)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != "forbidden" {
		t.Errorf("client as bob: %v", err)
	}
}

// A running job: its owner kills it, another user cannot.
func TestAuthKillRunning(t *testing.T) {
	s := start(t, withAuth(t))
	var j job.Job
	s.as(aliceToken, "POST", "/api/v1/jobs", bash("sleep 30"), &j)
	s.waitStatus(j.ID, job.Running, 20*time.Second)
	s.want(bobToken, "DELETE", "/api/v1/jobs/"+j.ID, nil, http.StatusForbidden)
	s.want(aliceToken, "DELETE", "/api/v1/jobs/"+j.ID, nil, http.StatusAccepted)
	if got := s.wait(j.ID, 20*time.Second); got.Status != job.Killed {
		t.Errorf("status %s, want KILLED", got.Status)
	}
}

// Users read the configuration; operators change it and manage workers.
func TestAuthConfigAndWorkers(t *testing.T) {
	s := start(t, withAuth(t))
	for _, kind := range []string{"clusters", "commands", "applications"} {
		body := map[string]any{"tags": []string{"team:x"}}
		switch kind {
		case "clusters":
			body["status"] = "UP"
		case "commands":
			body["status"] = "ACTIVE"
			body["executable"] = []string{"true"}
		}
		path := "/api/v1/" + kind + "/authtest"
		s.want(aliceToken, "GET", "/api/v1/"+kind, nil, http.StatusOK)
		s.want(aliceToken, "PUT", path, body, http.StatusForbidden)
		s.want(opsToken, "PUT", path, body, http.StatusCreated)
		s.want(aliceToken, "GET", path, nil, http.StatusOK)
		s.want(aliceToken, "PATCH", path, map[string]any{"description": "x"}, http.StatusForbidden)
		s.want(opsToken, "PATCH", path, map[string]any{"description": "x"}, http.StatusOK)
		s.want(aliceToken, "DELETE", path, nil, http.StatusForbidden)
		s.want(rootToken, "DELETE", path, nil, http.StatusNoContent)
	}
	s.want(aliceToken, "GET", "/api/v1/workers", nil, http.StatusForbidden)
	s.want(opsToken, "GET", "/api/v1/workers", nil, http.StatusOK)
	s.want(aliceToken, "POST", "/api/v1/workers/nobody/drain", nil, http.StatusForbidden)
	s.want(opsToken, "POST", "/api/v1/workers/nobody/drain", nil, http.StatusNotFound)
	s.want(aliceToken, "GET", "/api/v1/pools", nil, http.StatusOK)
	s.want(aliceToken, "GET", "/api/v1/nothing", nil, http.StatusNotFound)
	s.want("", "GET", "/api/v1/openapi.json", nil, http.StatusOK)
	s.want("", "GET", "/healthz", nil, http.StatusOK)
}

// The tokens file is read again on Reload: a removed token stops working.
func TestAuthReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	write := func(lines string) {
		if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(intake.HashToken(aliceToken) + " alice user\n")
	a, err := intake.LoadAuth(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, func(c *fleet.Config) { c.Auth = a }, withWorkers(-1))
	s.want(aliceToken, "GET", "/api/v1/jobs", nil, http.StatusOK)
	write(intake.HashToken(bobToken) + " bob operator\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	s.want(aliceToken, "GET", "/api/v1/jobs", nil, http.StatusUnauthorized)
	s.want(bobToken, "GET", "/api/v1/workers", nil, http.StatusOK)
	write("garbage\n")
	if err := a.Reload(); err == nil {
		t.Error("a broken tokens file was taken")
	}
	s.want(bobToken, "GET", "/api/v1/workers", nil, http.StatusOK) // the old tokens stay
}

// testCA makes a CA and a certificate it signs for 127.0.0.1, written as
// PEM files; it returns the paths and a pool trusting the CA.
func testCA(t *testing.T) (certFile, keyFile, caFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jinn test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile, caFile = write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, caFile, pool
}

// The intake serves HTTPS with --tls-cert and --tls-key; a client that
// trusts the CA talks to it, one that does not is refused.
func TestIntakeTLS(t *testing.T) {
	cert, key, _, pool := testCA(t)
	s := start(t, withAuth(t), func(c *fleet.Config) { c.TLSCert, c.TLSKey = cert, key })
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("URL %s", s.URL)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := client.New(s.URL, client.WithHTTPClient(hc), client.WithToken(aliceToken))
	ctx := context.Background()
	j, err := c.Submit(ctx, &job.Request{Command: []string{"type:bash"}, Args: []string{"echo tls"}})
	if err != nil {
		t.Fatal(err)
	}
	if j.User != "alice" {
		t.Errorf("user %q", j.User)
	}
	if got := s.wait(j.ID, 20*time.Second); got.Status != job.Succeeded {
		t.Errorf("status %s", got.Status)
	}
	if _, err := client.New(s.URL, client.WithToken(aliceToken)).Get(ctx, j.ID); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that does not trust the CA: %v", err)
	}
}

// Every role reaches a NATS that wants TLS and an nkey, and a Redis that
// wants TLS, through fleet.Security (--nats-tls-ca, --nats-nkey,
// --redis-tls-ca and a rediss:// URL).
func TestNATSAndRedisTLS(t *testing.T) {
	cert, key, ca, _ := testCA(t)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}

	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		TLS: true, TLSConfig: serverTLS, Nkeys: []*server.NkeyUser{{Nkey: pub}}, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	mr, err := miniredis.RunTLS(serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mr.Close)
	natsURL := "tls://" + ns.Addr().String()

	// Without the CA (or the nkey) the connection is refused, saying why.
	for _, sec := range []fleet.Security{{NATSNkey: seedFile}, {NATSTLSCA: ca}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := fleet.Connect(ctx, fleet.Common{NATSURL: natsURL, RedisURL: "rediss://" + mr.Addr(), Security: sec})
		cancel()
		if err == nil {
			t.Errorf("connected with %+v", sec)
		}
	}
	s := start(t, func(c *fleet.Config) {
		c.NATSURL, c.RedisURL = natsURL, "rediss://"+mr.Addr()
		c.Security = fleet.Security{NATSTLSCA: ca, NATSNkey: seedFile, RedisTLSCA: ca}
	})
	j := s.submit(bash("echo over tls"))
	if got := s.wait(j.ID, 20*time.Second); got.Status != job.Succeeded {
		t.Errorf("status %s", got.Status)
	}
}
