package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jinn-fleet/jinn/internal/s3test"
	"github.com/jinn-fleet/jinn/store"
)

// writerAt collects a download; parts arrive concurrently.
type writerAt struct {
	mu sync.Mutex
	b  []byte
}

func (w *writerAt) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := int(off) + len(p); n > len(w.b) {
		w.b = append(w.b, make([]byte, n-len(w.b))...)
	}
	copy(w.b[off:], p)
	return len(p), nil
}

// TestArchiveConformance runs the same checks against a directory and a
// bucket served by gofakes3 over HTTP.
func TestArchiveConformance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := s3test.Start(t, "arch")
	s3a := fake.Client(t).Archive("arch", "pre/fix")
	local, dir := openArchive(t)
	for _, tc := range []struct {
		name string
		a    store.Archive
		uri  string
	}{
		{"local", local, "file://" + dir + "/jobs/j1/output/stdout"},
		{"s3", s3a, "s3://arch/pre/fix/jobs/j1/output/stdout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			key := store.JobKey("j1", "stdout")
			if got := a.URI(key); got != tc.uri {
				t.Errorf("URI = %q, want %q", got, tc.uri)
			}
			for k, v := range map[string]string{key: "hello world\n", store.JobKey("j1", "sub/data.csv"): "1,2\n", store.RecordKey("j1"): "{}"} {
				if err := a.Put(ctx, k, strings.NewReader(v)); err != nil {
					t.Fatalf("Put(%s): %v", k, err)
				}
			}
			body, info := readObject(t, a, key)
			if body != "hello world\n" || info.Name != "stdout" || info.Size != 12 {
				t.Errorf("Open = %q %+v", body, info)
			}
			o, err := a.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(o, buf); err != nil || string(buf) != "hello" {
				t.Errorf("first read %q %v", buf, err)
			}
			if _, err := o.Seek(6, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if rest, err := io.ReadAll(o); err != nil || string(rest) != "world\n" {
				t.Errorf("after Seek(6): %q %v", rest, err)
			}
			if _, err := o.Seek(-3, io.SeekEnd); err != nil {
				t.Fatal(err)
			}
			if rest, _ := io.ReadAll(o); string(rest) != "ld\n" {
				t.Errorf("after Seek(-3, end): %q", rest)
			}
			o.Close()

			names := func(prefix string) string {
				files, err := a.List(ctx, prefix)
				if err != nil {
					t.Fatalf("List(%q): %v", prefix, err)
				}
				var n []string
				for _, f := range files {
					if f.Dir {
						n = append(n, f.Name+"/")
					} else {
						n = append(n, f.Name)
					}
				}
				return strings.Join(n, " ")
			}
			if got := names("jobs/j1/"); got != "job.json output/" {
				t.Errorf("List(jobs/j1/) = %q", got)
			}
			if got := names("jobs/j1/output"); got != "stdout sub/" {
				t.Errorf("List(jobs/j1/output) = %q", got)
			}
			if _, err := a.Open(ctx, "jobs/j2/output/stdout"); !errors.Is(err, store.ErrNoObject) {
				t.Errorf("Open of a missing key: %v", err)
			}
			if _, err := a.List(ctx, "jobs/j2/"); !errors.Is(err, store.ErrNoObject) {
				t.Errorf("List of a missing prefix: %v", err)
			}
			if err := a.Put(ctx, "../x", strings.NewReader("x")); err == nil {
				t.Error("Put(../x) succeeded")
			}
		})
	}
}

// TestS3MultipartUpload: an object over the threshold goes up in parts
// through the SDK's transfer manager and comes back whole.
func TestS3MultipartUpload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := s3test.Start(t, "arch")
	cfg := fake.Config()
	cfg.PartSize, cfg.MultipartThreshold = 5<<20, 5<<20
	c, err := store.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 11<<20+123)
	_, _ = rand.Read(data)
	a := c.Archive("arch", "")
	if err := a.Put(ctx, "big.bin", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if n := fake.Hits("POST", "arch", "big.bin"); n < 2 { // create and complete
		t.Errorf("%d POSTs: the upload was not multipart", n)
	}
	if n := fake.Hits("PUT", "arch", "big.bin"); n != 3 {
		t.Errorf("%d parts uploaded, want 3", n)
	}
	got, _ := fake.Get(t, "arch", "big.bin")
	if !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes, want the %d uploaded", len(got), len(data))
	}
	// And it downloads in ranges.
	var w writerAt
	info, err := store.NewURIs(cfg).Download(ctx, "s3://arch/big.bin", &w)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || info.ETag == "" || !bytes.Equal(w.b, data) {
		t.Fatalf("download: %+v, %d bytes, equal %v", info, len(w.b), bytes.Equal(w.b, data))
	}
}

func TestURIs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := s3test.Start(t, "deps")
	fake.Put(t, "deps", "lib/tool.sh", []byte("echo tool\n"))
	local := filepath.Join(t.TempDir(), "conf.ini")
	if err := os.WriteFile(local, []byte("a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := store.NewURIs(fake.Config())
	for uri, want := range map[string]string{"s3://deps/lib/tool.sh": "echo tool\n", "file://" + local: "a=1\n"} {
		info, err := u.Stat(ctx, uri)
		if err != nil || info.Size != int64(len(want)) || info.ETag == "" {
			t.Errorf("Stat(%s) = %+v, %v", uri, info, err)
		}
		var w writerAt
		if _, err := u.Download(ctx, uri, &w); err != nil || string(w.b) != want {
			t.Errorf("Download(%s) = %q, %v", uri, w.b, err)
		}
	}
	for _, uri := range []string{"s3://deps/nope", "s3://nobucket/x", "file:///no/such/file"} {
		if _, err := u.Stat(ctx, uri); !errors.Is(err, store.ErrNoObject) || !strings.Contains(err.Error(), uri) {
			t.Errorf("Stat(%s): %v, want ErrNoObject naming the URI", uri, err)
		}
	}
	if _, err := u.Stat(ctx, "http://x/y"); err == nil {
		t.Error("Stat of an http URI succeeded")
	}
}

// TestS3Retries: a store that fails with 503 twice is retried until it
// answers; one that keeps failing gives up after MaxAttempts.
func TestS3Retries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := s3test.Start(t, "deps")
	fake.Put(t, "deps", "x", []byte("x"))
	var failures atomic.Int32
	failures.Store(2)
	fake.FailWith(func(*http.Request) int {
		if failures.Add(-1) >= 0 {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	u := store.NewURIs(fake.Config())
	if _, err := u.Stat(ctx, "s3://deps/x"); err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
	fake.FailWith(func(*http.Request) int { return http.StatusInternalServerError })
	_, err := u.Stat(ctx, "s3://deps/x")
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") || !strings.Contains(err.Error(), fake.URL) {
		t.Fatalf("a failing store: %v", err)
	}
}

// TestS3Down: a store that refuses connections, or accepts them and never
// answers, fails each call within its timeout and retries, naming the store.
func TestS3Down(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	for name, addr := range map[string]string{"refused": refusedAddr, "hung": hung.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			cfg := store.S3Config{Endpoint: "http://" + addr, PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s",
				MaxAttempts: 2, MaxBackoff: 10 * time.Millisecond, Timeout: 300 * time.Millisecond}
			begin := time.Now()
			_, err := store.NewURIs(cfg).Stat(ctx, "s3://deps/x")
			if err == nil || errors.Is(err, store.ErrNoObject) || !strings.Contains(err.Error(), addr) {
				t.Fatalf("Stat on a %s store: %v", name, err)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			_, err = store.OpenObjects(ctx, store.ObjectsConfig{Archive: "s3://arch/jinn", S3: cfg})
			if err == nil || !strings.Contains(err.Error(), "--s3-endpoint") {
				t.Errorf("OpenObjects on a %s store: %v", name, err)
			}
		})
	}
}

func TestOpenObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := s3test.Start(t, "arch")
	o, err := store.OpenObjects(ctx, store.ObjectsConfig{Archive: "s3://arch/jinn/", S3: fake.Config()})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Archive.URI("jobs/x/job.json"); got != "s3://arch/jinn/jobs/x/job.json" {
		t.Errorf("URI = %q", got)
	}
	_, err = store.OpenObjects(ctx, store.ObjectsConfig{Archive: "s3://missing/jinn", S3: fake.Config()})
	if err == nil || !strings.Contains(err.Error(), "no bucket missing") {
		t.Errorf("a missing bucket: %v", err)
	}
	dir := t.TempDir()
	for _, loc := range []string{dir + "/a", "file://" + dir + "/b"} {
		o, err := store.OpenObjects(ctx, store.ObjectsConfig{Archive: loc})
		if err != nil {
			t.Fatalf("OpenObjects(%s): %v", loc, err)
		}
		if !strings.HasPrefix(o.Archive.URI("k"), "file://"+dir+"/") {
			t.Errorf("URI of %s = %s", loc, o.Archive.URI("k"))
		}
		o.Close()
	}
	for _, bad := range []string{"http://x/y", "file://host/x", "s3://UPPER/x", ""} {
		if _, err := store.OpenObjects(ctx, store.ObjectsConfig{Archive: bad}); err == nil {
			t.Errorf("OpenObjects(%q) succeeded", bad)
		}
	}
}
