package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/internal/s3test"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

func testCache(t *testing.T, fake *s3test.Server) *cache {
	t.Helper()
	c, err := newCache(filepath.Join(t.TempDir(), "cache"), store.NewURIs(fake.Config()), 1<<30, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCacheDownloadsOnce: the first job downloads, the next ones (even many
// at once) link the cache entry; a new version of the object is fetched
// again.
func TestCacheDownloadsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := s3test.Start(t, "deps")
	fake.Put(t, "deps", "tool.tar.gz", []byte("version 1"))
	c := testCache(t, fake)
	dep := job.Dependency{URI: "s3://deps/tool.tar.gz", Path: "tool.tar.gz", For: "job"}
	jobs := t.TempDir()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			dir := filepath.Join(jobs, "j"+string(rune('0'+i)))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				errs <- err
				return
			}
			errs <- c.place(ctx, dep, filepath.Join(dir, "tool.tar.gz"))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.Hits("GET", "deps", "tool.tar.gz"); n != 1 {
		t.Errorf("8 jobs at once made %d downloads, want 1", n)
	}
	if hits, misses := c.stats(); misses != 1 || hits+misses < 1 {
		t.Errorf("hits %d misses %d", hits, misses)
	}
	got := readFile(t, filepath.Join(jobs, "j3", "tool.tar.gz"))
	if got != "version 1" {
		t.Errorf("placed %q", got)
	}
	st, _ := os.Stat(filepath.Join(jobs, "j3", "tool.tar.gz"))
	if st.Mode().Perm() != cacheMode {
		t.Errorf("mode %v, want %v", st.Mode().Perm(), cacheMode)
	}

	// A new version (new ETag) is fetched again.
	fake.Put(t, "deps", "tool.tar.gz", []byte("version 2!"))
	dir := filepath.Join(jobs, "k")
	_ = os.MkdirAll(dir, 0o755)
	if err := c.place(ctx, dep, filepath.Join(dir, "tool.tar.gz")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "tool.tar.gz")); got != "version 2!" {
		t.Errorf("after the object changed: %q", got)
	}
	if n := fake.Hits("GET", "deps", "tool.tar.gz"); n != 2 {
		t.Errorf("%d downloads after the object changed, want 2", n)
	}
}

// TestCacheTamperedEntry: a job that makes its linked file writable changes
// the cache's inode; the entry is not trusted again.
func TestCacheTamperedEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := s3test.Start(t, "deps")
	fake.Put(t, "deps", "a.jar", []byte("jar"))
	c := testCache(t, fake)
	dep := job.Dependency{URI: "s3://deps/a.jar", Path: "a.jar", For: "job"}
	first := filepath.Join(t.TempDir(), "a.jar")
	if err := c.place(ctx, dep, first); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(first, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(first, []byte("JAR"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "a.jar")
	if err := c.place(ctx, dep, second); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, second); got != "jar" {
		t.Errorf("second job got %q, want the object's content", got)
	}
}

func TestCacheMissingObject(t *testing.T) {
	t.Parallel()
	fake := s3test.Start(t, "deps")
	c := testCache(t, fake)
	err := c.place(context.Background(), job.Dependency{URI: "s3://deps/nope.jar", Path: "nope.jar", For: "application spark"}, filepath.Join(t.TempDir(), "x"))
	if err == nil || err.Error() != "file s3://deps/nope.jar of the application spark does not exist: upload it, or fix the URI" {
		t.Errorf("missing object: %v", err)
	}
}

func TestCachePrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := s3test.Start(t, "deps")
	c := testCache(t, fake)
	dir := t.TempDir()
	for i, name := range []string{"old", "mid", "new"} {
		fake.Put(t, "deps", name, []byte(strings.Repeat("x", 100)))
		if err := c.place(ctx, job.Dependency{URI: "s3://deps/" + name, Path: name}, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		info, _ := c.uris.Stat(ctx, "s3://deps/"+name)
		when := time.Now().Add(time.Duration(i-3) * time.Hour)
		_ = os.Chtimes(c.entry(info), when, when)
	}
	if freed := c.prune(250); freed != 100 {
		t.Errorf("freed %d, want one entry of 100", freed)
	}
	info, _ := c.uris.Stat(ctx, "s3://deps/old")
	if _, err := os.Stat(c.entry(info)); !errors.Is(err, os.ErrNotExist) {
		t.Error("the least recently used entry stayed")
	}
	// The job's linked file outlives the entry.
	if got := readFile(t, filepath.Join(dir, "old")); len(got) != 100 {
		t.Errorf("job file after prune: %d bytes", len(got))
	}
}

// TestJanitor: finished directories go after their retention, running
// ones never, and all finished ones (oldest first) when the disk is short.
func TestJanitor(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	running := map[string]bool{"run1": true}
	d, err := newDisk(data, FilesConfig{JobDirRetention: time.Hour, MinFreeDisk: 1000}, false, nil, func(id string) bool { return running[id] }, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d.now = func() time.Time { return now }
	free := uint64(5000)
	d.free = func() (uint64, uint64, error) { return free, 100000, nil }
	mk := func(id string, age time.Duration, finished bool) string {
		p := filepath.Join(data, "jobs", id)
		if err := os.MkdirAll(filepath.Join(p, "jinn"), 0o755); err != nil {
			t.Fatal(err)
		}
		if finished {
			d.finished(p)
			_ = os.Chtimes(filepath.Join(p, finishedMark), now.Add(-age), now.Add(-age))
		} else {
			_ = os.Chtimes(p, now.Add(-age), now.Add(-age))
		}
		return p
	}
	old := mk("old", 2*time.Hour, true)
	fresh := mk("fresh", 10*time.Minute, true)
	fresher := mk("fresher", time.Minute, true)
	orphan := mk("orphan", 3*time.Hour, false) // a worker died before marking it
	run := mk("run1", 5*time.Hour, false)
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	d.sweep()
	if exists(old) || exists(orphan) {
		t.Error("directories past their retention stayed")
	}
	if !exists(fresh) || !exists(fresher) || !exists(run) {
		t.Error("a directory within its retention, or a running job's, was removed")
	}

	// The disk is short: finished directories go, oldest first, until it
	// is not; a running job's stays.
	free = 500
	removed := 0
	d.free = func() (uint64, uint64, error) {
		if removed++; removed > 1 {
			free = 2000 // after the first removal
		}
		return free, 100000, nil
	}
	d.sweep()
	if exists(fresh) || !exists(fresher) || !exists(run) {
		t.Errorf("disk short: fresh %v fresher %v run %v; want only the oldest finished one gone", exists(fresh), exists(fresher), exists(run))
	}
}
