package store_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

func TestCleanKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key, want string
		bad       bool
	}{
		{key: "", want: ""},
		{key: ".", want: ""},
		{key: "./", want: ""},
		{key: "a", want: "a"},
		{key: "a/b/c", want: "a/b/c"},
		{key: "a/./b", want: "a/b"},
		{key: "a//b/", want: "a/b"},
		{key: "a/b/../c", want: "a/c"},
		{key: "a/..", want: ""},
		{key: "..a/b", want: "..a/b"}, // a name that starts with dots is a name
		{key: "a/..b", want: "a/..b"},
		{key: "jobs/j1/output/stdout", want: "jobs/j1/output/stdout"},
		{key: "..", bad: true},
		{key: "../x", bad: true},
		{key: "a/../../x", bad: true},
		{key: "a/b/../../..", bad: true},
		{key: "/etc/passwd", bad: true},
		{key: "/", bad: true},
		{key: "a\\b", bad: true},
		{key: "..\\x", bad: true},
		{key: "a\x00b", bad: true},
	} {
		got, err := store.CleanKey(tc.key)
		switch {
		case tc.bad && err == nil:
			t.Errorf("CleanKey(%q) = %q, want an error", tc.key, got)
		case !tc.bad && err != nil:
			t.Errorf("CleanKey(%q): %v", tc.key, err)
		case !tc.bad && got != tc.want:
			t.Errorf("CleanKey(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	if got := store.JobKey("j1", "lib/a.jar"); got != "jobs/j1/output/lib/a.jar" {
		t.Errorf("JobKey = %q", got)
	}
	if got := store.RecordKey("j1"); got != "jobs/j1/job.json" {
		t.Errorf("RecordKey = %q", got)
	}
}

func openArchive(t *testing.T) (*store.LocalArchive, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "archive") // OpenLocalArchive creates it
	a, err := store.OpenLocalArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, dir
}

func readObject(t *testing.T, a store.Archive, key string) (string, job.File) {
	t.Helper()
	o, err := a.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), o.Info()
}

func TestLocalArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, _ := openArchive(t)
	var _ store.Archive = a

	stdout := store.JobKey("j1", "stdout")
	if err := a.Put(ctx, stdout, strings.NewReader("hello\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, store.JobKey("j1", "sub/data.csv"), strings.NewReader("1,2\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, store.RecordKey("j1"), strings.NewReader(`{"id":"j1"}`)); err != nil {
		t.Fatal(err)
	}

	body, info := readObject(t, a, stdout)
	if body != "hello\n" || info.Name != "stdout" || info.Size != 6 || info.Dir || info.ModTime.IsZero() {
		t.Errorf("Open(stdout) = %q, %+v", body, info)
	}
	// Objects seek, for HTTP range requests.
	o, err := a.Open(ctx, stdout)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Seek(2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(o); string(rest) != "llo\n" {
		t.Errorf("after Seek(2): %q", rest)
	}
	o.Close()

	// Put replaces.
	if err := a.Put(ctx, stdout, strings.NewReader("bye\n")); err != nil {
		t.Fatal(err)
	}
	if body, _ := readObject(t, a, stdout); body != "bye\n" {
		t.Errorf("after a second Put: %q", body)
	}

	list := func(prefix string) string {
		t.Helper()
		files, err := a.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		var names []string
		for _, f := range files {
			n := f.Name
			if f.Dir {
				n += "/"
			}
			names = append(names, n)
		}
		return strings.Join(names, " ")
	}
	if got := list("jobs/j1/"); got != "job.json output/" {
		t.Errorf("List(jobs/j1/) = %q", got)
	}
	if got := list("jobs/j1/output/"); got != "stdout sub/" {
		t.Errorf("List(jobs/j1/output/) = %q", got)
	}
	if got := list("jobs/j1/output"); got != "stdout sub/" {
		t.Errorf("List without the trailing slash = %q", got)
	}
	if got := list(""); got != "jobs/" {
		t.Errorf("List(\"\") = %q", got)
	}

	for _, key := range []string{"jobs/j2/output/stdout", "jobs/j1/output/sub"} {
		if _, err := a.Open(ctx, key); !errors.Is(err, store.ErrNoObject) {
			t.Errorf("Open(%s): %v, want ErrNoObject", key, err)
		}
	}
	if _, err := a.List(ctx, "jobs/j2/"); !errors.Is(err, store.ErrNoObject) {
		t.Errorf("List of a missing prefix: %v, want ErrNoObject", err)
	}
	for _, key := range []string{"../x", "/etc/passwd", "a\\b", "", "."} {
		if err := a.Put(ctx, key, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) succeeded", key)
		}
	}
	for _, key := range []string{"../x", "jobs/../../x", "/etc/passwd"} {
		if _, err := a.Open(ctx, key); err == nil || errors.Is(err, store.ErrNoObject) {
			t.Errorf("Open(%q): %v, want a bad key error", key, err)
		}
		if _, err := a.List(ctx, key); err == nil || errors.Is(err, store.ErrNoObject) {
			t.Errorf("List(%q): %v, want a bad key error", key, err)
		}
	}
}

// failingReader yields some bytes, then fails.
type failingReader struct{ sent bool }

func (r *failingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, "half a fi"), nil
	}
	return 0, errors.New("connection reset")
}

// TestLocalArchiveAtomicPut: a reader sees the old object or the whole new
// one, never a partial file, and no temporary file is left or listed.
func TestLocalArchiveAtomicPut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, dir := openArchive(t)
	key := store.JobKey("j1", "stdout")
	if err := a.Put(ctx, key, strings.NewReader("complete\n")); err != nil {
		t.Fatal(err)
	}

	// While a Put is streaming, the key still holds the old object.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- a.Put(ctx, key, pr) }()
	if _, err := pw.Write([]byte("new, still being wri")); err != nil {
		t.Fatal(err)
	}
	// The write above returned: Put has the bytes and is blocked on the next.
	if body, _ := readObject(t, a, key); body != "complete\n" {
		t.Errorf("during a Put the key reads %q, want the old object", body)
	}
	if files, _ := a.List(ctx, "jobs/j1/output/"); len(files) != 1 || files[0].Name != "stdout" {
		t.Errorf("during a Put List shows %+v, want only stdout", files)
	}
	if _, err := pw.Write([]byte("tten\n")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if body, _ := readObject(t, a, key); body != "new, still being written\n" {
		t.Errorf("after the Put: %q", body)
	}

	// A Put that fails leaves the old object and no temporary file.
	if err := a.Put(ctx, key, &failingReader{}); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	if body, _ := readObject(t, a, key); body != "new, still being written\n" {
		t.Errorf("after a failed Put: %q", body)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "jobs", "j1", "output"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "stdout" {
			t.Errorf("left in the archive directory: %s", e.Name())
		}
	}
}

// TestLocalArchiveConcurrentPut: puts of one key that overlap (two attempts
// archiving the same job) each succeed and leave one of the whole objects.
func TestLocalArchiveConcurrentPut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, dir := openArchive(t)
	key := store.JobKey("j1", "stdout")
	const writers = 8
	bodies := make([]string, writers)
	for i := range bodies {
		bodies[i] = strings.Repeat(string(rune('a'+i)), 256<<10)
	}
	start := make(chan struct{})
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			<-start
			errs <- a.Put(ctx, key, strings.NewReader(bodies[i]))
		}()
	}
	close(start)
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Put: %v", err)
		}
	}
	body, _ := readObject(t, a, key)
	whole := false
	for _, b := range bodies {
		whole = whole || body == b
	}
	if !whole {
		t.Errorf("after concurrent Puts the object is a mix (%d bytes, starts %q)", len(body), body[:min(8, len(body))])
	}
	entries, err := os.ReadDir(filepath.Join(dir, "jobs", "j1", "output"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("left in the archive directory: %v", entries)
	}
}

// TestLocalArchiveSymlinkEscape: a symlink planted in the archive that points
// outside it is not followed (os.Root).
func TestLocalArchiveSymlinkEscape(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, dir := openArchive(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, store.JobKey("j1", "stdout"), strings.NewReader("ok")); err != nil {
		t.Fatal(err)
	}
	jobDir := filepath.Join(dir, "jobs", "j1", "output")
	if err := os.Symlink(secret, filepath.Join(jobDir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(jobDir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{store.JobKey("j1", "link"), store.JobKey("j1", "dirlink/secret")} {
		o, err := a.Open(ctx, key)
		if err == nil {
			b, _ := io.ReadAll(o)
			o.Close()
			t.Fatalf("Open(%s) followed a symlink out of the archive and read %q", key, b)
		}
	}
	if _, err := a.List(ctx, store.JobKey("j1", "dirlink/")); err == nil {
		t.Error("List followed a symlinked directory out of the archive")
	}
	// Put through the symlinked directory must not write outside either.
	if err := a.Put(ctx, store.JobKey("j1", "dirlink/planted"), strings.NewReader("x")); err == nil {
		t.Error("Put wrote through a symlink out of the archive")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("a file was created outside the archive")
	}
	// A symlink that stays inside the archive is fine.
	if err := os.Symlink("stdout", filepath.Join(jobDir, "inside")); err != nil {
		t.Fatal(err)
	}
	if body, _ := readObject(t, a, store.JobKey("j1", "inside")); body != "ok" {
		t.Errorf("symlink inside the archive reads %q", body)
	}
}

func TestListDir(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"job/stdout":      {Data: []byte("out")},
		"job/stderr":      {Data: []byte("")},
		"job/big.part":    {Data: []byte("partial")},
		"job/lib/a.jar":   {Data: []byte("jar")},
		"job/lib/b.jar":   {Data: []byte("jar")},
		"other/unrelated": {},
	}
	files, err := store.ListDir(fsys, "job")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Name)
		if f.Name == "stdout" && f.Size != 3 {
			t.Errorf("stdout size = %d", f.Size)
		}
		if f.Name == "lib" && (!f.Dir || f.Size != 0) {
			t.Errorf("lib = %+v, want a directory", f)
		}
	}
	if strings.Join(got, " ") != "lib stderr stdout" {
		t.Errorf("ListDir = %v, want sorted names without temporary files", got)
	}
	if _, err := store.ListDir(fsys, "nope"); err == nil {
		t.Error("ListDir of a missing directory: no error")
	}
}
