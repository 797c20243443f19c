// Package s3test serves a fake S3 (gofakes3, in memory) over real HTTP for
// tests that drive it with the real aws-sdk-go-v2 client, and counts the
// requests it answers so that a test can tell a cache hit from a download.
package s3test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/jinn-fleet/jinn/store"
)

// Credentials the fake accepts (it accepts any; the SDK needs some).
const (
	AccessKey = "jinn-test"
	SecretKey = "jinn-test-secret"
)

// Server is a fake S3 endpoint.
type Server struct {
	*httptest.Server
	Backend *s3mem.Backend

	mu   sync.Mutex
	hits map[string]int // "GET bucket/key" → count
	// Fail, when set, answers a request with its status instead of S3.
	fail func(r *http.Request) int
}

// Start serves a fake S3 with the given buckets until the test ends.
func Start(t testing.TB, buckets ...string) *Server {
	t.Helper()
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			t.Fatalf("create bucket %s: %v", b, err)
		}
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	s := &Server{Backend: backend, hits: map[string]int{}}
	h := faker.Server()
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.Method+" "+strings.TrimPrefix(r.URL.Path, "/")]++
		fail := s.fail
		s.mu.Unlock()
		if fail != nil {
			if code := fail(r); code != 0 {
				w.WriteHeader(code)
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// Config is an S3 client configuration for this server: path-style, static
// credentials, quick retries.
func (s *Server) Config() store.S3Config {
	return store.S3Config{Endpoint: s.URL, Region: "us-east-1", PathStyle: true,
		AccessKeyID: AccessKey, SecretAccessKey: SecretKey, MaxBackoff: 50 * time.Millisecond}
}

// Put stores an object.
func (s *Server) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	if _, err := s.Backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// Get reads an object, or returns false when it is missing.
func (s *Server) Get(t testing.TB, bucket, key string) ([]byte, bool) {
	t.Helper()
	o, err := s.Backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, false
	}
	defer o.Contents.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(o.Contents)
	return b.Bytes(), true
}

// Hits is how many requests of method reached bucket/key.
func (s *Server) Hits(method, bucket, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[method+" "+bucket+"/"+key]
}

// FailWith makes the server answer the requests for which fn returns a
// status with that status (0: serve it); nil serves every request again.
func (s *Server) FailWith(fn func(r *http.Request) int) {
	s.mu.Lock()
	s.fail = fn
	s.mu.Unlock()
}

// Client returns an S3 client for this server.
func (s *Server) Client(t testing.TB) *store.S3 {
	t.Helper()
	c, err := store.NewS3(context.Background(), s.Config())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
