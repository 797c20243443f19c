package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jinn-fleet/jinn/job"
)

// ErrNoObject means the archive holds nothing under that key.
var ErrNoObject = errors.New("no such object")

// Object is one archived file, open for reading.
type Object interface {
	io.ReadSeekCloser
	Info() job.File
}

// Archive keeps what finished jobs leave behind, under keys such as
// "jobs/<id>/output/stdout", and the files attached to jobs. Keys are
// slash-separated and never contain "..". Implementations: LocalArchive (a
// directory) and S3Archive (a bucket and prefix).
type Archive interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Open(ctx context.Context, key string) (Object, error)
	// List returns the direct children of a key prefix ending in "/".
	List(ctx context.Context, prefix string) ([]job.File, error)
	// URI is where key lives, for URIs to read it: s3://bucket/prefix/key
	// or file:///dir/key.
	URI(key string) string
}

// JobKey is the archive key of a file of job id's output directory.
func JobKey(id, rel string) string { return "jobs/" + id + "/output/" + rel }

// RecordKey is the archive key of a job's final record.
func RecordKey(id string) string { return "jobs/" + id + "/job.json" }

// CleanKey checks a key (or a path inside a job's directory) cannot escape
// its root: relative, no "..", no empty or "." segments after cleaning.
func CleanKey(key string) (string, error) {
	if key == "" {
		return "", nil
	}
	if strings.ContainsRune(key, 0) || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return "", fmt.Errorf("path %q is not a relative slash path", key)
	}
	c := path.Clean(key)
	if c == "." {
		return "", nil
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q leaves the job directory", key)
	}
	return c, nil
}

// LocalArchive is an Archive in a local directory: the embedded default.
type LocalArchive struct {
	root *os.Root
	dir  string // absolute
}

// OpenLocalArchive opens (creating) a directory as an archive.
func OpenLocalArchive(dir string) (*LocalArchive, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	return &LocalArchive{root: r, dir: abs}, nil
}

// URI is the file:// URI of key.
func (a *LocalArchive) URI(key string) string {
	return "file://" + filepath.ToSlash(filepath.Join(a.dir, filepath.FromSlash(key)))
}

// Close releases the directory.
func (a *LocalArchive) Close() error { return a.root.Close() }

// Put writes an object atomically (a reader never sees half a file): it
// writes a temporary file of its own, flushes it to disk and renames it over
// the key. Puts of one key may overlap; the last rename wins.
func (a *LocalArchive) Put(_ context.Context, key string, r io.Reader) error {
	k, err := CleanKey(key)
	if err != nil || k == "" {
		return fmt.Errorf("archive put %q: bad key", key)
	}
	if dir := path.Dir(k); dir != "." {
		if err := a.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("archive put %s: %w", k, err)
		}
	}
	// Its own name, so that overlapping puts never write into one file; the
	// ".part" suffix keeps it out of listings.
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := k + "." + hex.EncodeToString(rnd[:]) + ".part"
	f, err := a.root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("archive put %s: %w", k, err)
	}
	fail := func(err error) error {
		_ = f.Close()
		_ = a.root.Remove(tmp)
		return fmt.Errorf("archive put %s: %w", k, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		return fail(err)
	}
	// The archive is the record of a finished job and the worker acks the
	// job once it is written: it must survive a crash, not only a reader.
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = a.root.Remove(tmp)
		return fmt.Errorf("archive put %s: %w", k, err)
	}
	if err := a.root.Rename(tmp, k); err != nil {
		_ = a.root.Remove(tmp)
		return fmt.Errorf("archive put %s: %w", k, err)
	}
	return nil
}

type localObject struct {
	*os.File
	info job.File
}

func (o *localObject) Info() job.File { return o.info }

// Open opens an archived file.
func (a *LocalArchive) Open(_ context.Context, key string) (Object, error) {
	k, err := CleanKey(key)
	if err != nil {
		return nil, err
	}
	f, err := a.root.Open(k)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNoObject)
	}
	if err != nil {
		return nil, fmt.Errorf("archive open %s: %w", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("archive open %s: %w", key, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory: %w", key, ErrNoObject)
	}
	return &localObject{File: f, info: job.File{Name: path.Base(k), Size: st.Size(), ModTime: st.ModTime()}}, nil
}

// List returns the direct children of prefix.
func (a *LocalArchive) List(_ context.Context, prefix string) ([]job.File, error) {
	k, err := CleanKey(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	if k == "" {
		k = "."
	}
	entries, err := fs.ReadDir(a.root.FS(), k)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", prefix, ErrNoObject)
	}
	if err != nil {
		return nil, fmt.Errorf("archive list %s: %w", prefix, err)
	}
	return filesOf(entries), nil
}

// filesOf turns directory entries into the output API's listing, sorted by name.
func filesOf(entries []fs.DirEntry) []job.File {
	out := make([]job.File, 0, len(entries))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".part") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		f := job.File{Name: e.Name(), ModTime: info.ModTime(), Dir: e.IsDir()}
		if !e.IsDir() {
			f.Size = info.Size()
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ListDir lists a directory (for a worker serving its live job directories).
func ListDir(fsys fs.FS, dir string) ([]job.File, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	return filesOf(entries), nil
}
