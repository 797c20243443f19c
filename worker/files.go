package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// A job's files (its dependencies and attachments, its applications', its
// cluster's and its command's) are fetched before it runs, through a cache on
// the worker's disk keyed by each object's URI, ETag and size: a tarball a
// thousand jobs use is downloaded once, and again only when it changes.
//
// A cache entry is read-only (0555: a binary runs as it is) and is hard-linked
// into a job's directory, so it costs no copy and no disk. A job that makes
// an entry writable (chmod) changes the cache's inode too: an entry whose
// mode is no longer 0555, or whose size changed, is thrown away and fetched
// again. Where a link is not possible (another file system), it is copied.

// cacheMode is the mode of every cache entry.
const cacheMode fs.FileMode = 0o555

// cache holds fetched objects under <data>/cache/<2 hex>/<64 hex>.
type cache struct {
	dir     string
	uris    *store.URIs
	max     int64 // bytes kept at most; the oldest entries go first
	log     hclog.Logger
	flights singleflight.Group

	mu     sync.Mutex
	hits   int64
	misses int64
}

func newCache(dir string, uris *store.URIs, max int64, log hclog.Logger) (*cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("worker cache directory: %w", err)
	}
	return &cache{dir: dir, uris: uris, max: max, log: log}, nil
}

// stats returns the hits and misses so far.
func (c *cache) stats() (hits, misses int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// entry is the path of the cache entry of an object version.
func (c *cache) entry(info store.ObjectInfo) string {
	sum := sha256.Sum256([]byte(info.URI + "\n" + info.ETag + "\n" + fmt.Sprint(info.Size)))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(c.dir, h[:2], h)
}

// fetchErr says which file failed and what to do about it.
func fetchErr(d job.Dependency, err error) error {
	if errors.Is(err, store.ErrNoObject) {
		return fmt.Errorf("file %s of the %s does not exist: upload it, or fix the URI", d.URI, d.For)
	}
	return fmt.Errorf("fetch %s (file of the %s): %w", d.URI, d.For, err)
}

// place puts the object of d at dest (a new path), from the cache, fetching
// it first when the cache does not hold its current version.
func (c *cache) place(ctx context.Context, d job.Dependency, dest string) error {
	for try := 0; ; try++ {
		info, err := c.uris.Stat(ctx, d.URI)
		if err != nil {
			return fetchErr(d, err)
		}
		src, err := c.get(ctx, info)
		if err != nil {
			return fetchErr(d, err)
		}
		err = os.Link(src, dest)
		if errors.Is(err, fs.ErrNotExist) && try == 0 {
			continue // evicted between get and link: once more
		}
		if err != nil {
			if err = copyFile(src, dest); err != nil {
				return fmt.Errorf("place %s at %s: %w", d.URI, d.Path, err)
			}
		}
		return nil
	}
}

// get returns the cache entry of an object version, downloading it once
// however many jobs ask for it at the same time.
func (c *cache) get(ctx context.Context, info store.ObjectInfo) (string, error) {
	path := c.entry(info)
	if c.valid(path, info.Size) {
		c.mu.Lock()
		c.hits++
		c.mu.Unlock()
		now := time.Now()
		_ = os.Chtimes(path, now, now) // the entries used last are evicted last
		return path, nil
	}
	_, err, _ := c.flights.Do(path, func() (any, error) {
		if c.valid(path, info.Size) {
			return nil, nil
		}
		c.mu.Lock()
		c.misses++
		c.mu.Unlock()
		return nil, c.download(ctx, info, path)
	})
	if err != nil {
		return "", err
	}
	return path, nil
}

// valid reports whether a cache entry exists unchanged.
func (c *cache) valid(path string, size int64) bool {
	st, err := os.Lstat(path)
	if err != nil {
		return false
	}
	if !st.Mode().IsRegular() || st.Mode().Perm() != cacheMode || st.Size() != size {
		c.log.Warn("cache entry changed (a job wrote to its file?); fetching it again", "entry", path)
		_ = os.Remove(path)
		return false
	}
	return true
}

// download fetches an object version into its entry, through a temporary
// file, so that no reader ever sees a partial entry.
func (c *cache) download(ctx context.Context, info store.ObjectInfo, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path + "." + hex.EncodeToString(rnd[:]) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after the rename, a no-op
	start := time.Now()
	got, err := c.uris.Download(ctx, info.URI, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got.ETag != "" && info.ETag != "" && got.ETag != info.ETag {
		return fmt.Errorf("the object changed while it was fetched (ETag %s, then %s); retry the job", info.ETag, got.ETag)
	}
	if st, err := os.Stat(tmp); err != nil || st.Size() != got.Size {
		return fmt.Errorf("fetched %d bytes of %d", sizeOf(st), got.Size)
	}
	if err := os.Chmod(tmp, cacheMode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	c.log.Debug("fetched into the cache", "uri", info.URI, "bytes", got.Size, "took", time.Since(start).Round(time.Millisecond))
	c.prune(c.max)
	return nil
}

func sizeOf(st fs.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

// prune removes the least recently used entries until the cache holds at
// most max bytes, and returns the bytes freed. Temporary files of
// downloads that died with their worker go too, once they are an hour old.
func (c *cache) prune(max int64) int64 {
	type ent struct {
		path string
		size int64
		used time.Time
	}
	var ents []ent
	var total int64
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if strings.HasSuffix(p, ".tmp") {
			if time.Since(info.ModTime()) > time.Hour {
				_ = os.Remove(p)
			}
			return nil
		}
		ents = append(ents, ent{p, info.Size(), info.ModTime()})
		total += info.Size()
		return nil
	})
	sort.Slice(ents, func(i, j int) bool { return ents[i].used.Before(ents[j].used) })
	var freed int64
	for _, e := range ents {
		if total <= max {
			break
		}
		// A job directory may still link it: removing the name frees the
		// space once those jobs are cleaned.
		if os.Remove(e.path) == nil {
			total -= e.size
			freed += e.size
		}
	}
	return freed
}

// copyFile copies src to a new file dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, cacheMode|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// install fetches every file of the spec into the job directory, several at
// a time; the first failure cancels the rest and is returned.
func (e *executor) install(ctx context.Context) error {
	if len(e.spec.Files) == 0 {
		return nil
	}
	if e.w.disk.cache == nil {
		return errors.New("this worker has no object store to fetch the job's files from")
	}
	root, err := os.OpenRoot(e.dir)
	if err != nil {
		return err
	}
	defer root.Close()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.w.disk.cfg.FetchConcurrency)
	for _, d := range e.spec.Files {
		rel, err := store.CleanKey(d.Path)
		if err != nil || rel == "" {
			return fmt.Errorf("file %s of the %s: bad path %q", d.URI, d.For, d.Path)
		}
		// Directories through the root: a path can never leave the job's
		// directory, whatever the spec says.
		if dir := filepath.Dir(rel); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("file %s of the %s: %w", d.URI, d.For, err)
			}
		}
		g.Go(func() error {
			return e.w.disk.cache.place(gctx, d, filepath.Join(e.dir, rel))
		})
	}
	start := time.Now()
	if err := g.Wait(); err != nil {
		return err
	}
	e.log.Debug("job files installed", "files", len(e.spec.Files), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// holdLease extends the attempt's lease every AckWait/3 while the worker
// fetches or archives (the process is not running, so supervise does not).
// lost is closed when the lease cannot be kept; stop ends it.
func (e *executor) holdLease() (stop func(), lost <-chan struct{}) {
	quit := make(chan struct{})
	gone := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		ackWait := e.w.broker.AckWait()
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		extended := time.Now()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if !e.keepLease(&extended, ackWait) {
					close(gone)
					return
				}
			}
		}
	}()
	return func() { close(quit); <-done }, gone
}

// setUp fetches the job's files and writes its run script, under the lease,
// and stops for a kill request, a hard stop of the worker or a lost lease.
// It returns the ending to settle with, or nil to run the job.
func (e *executor) setUp(ctx context.Context) *ending {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, lost := e.holdLease()
	defer stop()
	why := make(chan *ending, 1)
	go func() {
		select {
		case <-e.killed:
			why <- &ending{status: job.Killed, message: "killed on request"}
		case <-e.w.hardCtx.Done():
			why <- &ending{handBack: true}
		case <-lost:
			why <- &ending{}
		case <-ctx.Done():
			return
		}
		cancel()
	}()
	err := e.install(ctx)
	if err == nil {
		err = e.writeRunScript()
	}
	if err == nil {
		return nil
	}
	select {
	case end := <-why:
		return end
	default:
	}
	return &ending{status: job.Failed, message: err.Error()}
}

// archived is how the archive of an attempt went; the final status write
// records it on the job.
type archived struct {
	status   job.ArchiveStatus
	location string
	message  string
}

// Manifest lists what a job's archive holds, at jobs/<id>/manifest.json.
type Manifest struct {
	Job      string    `json:"job"`
	Attempt  int       `json:"attempt"`
	Worker   string    `json:"worker"`
	Archived time.Time `json:"archived"`
	// Files are under jobs/<id>/output/, by their path in the job directory.
	Files []ManifestFile `json:"files"`
	// Skipped were left out: excluded, past the size cap, or not regular files.
	Skipped []ManifestFile `json:"skipped,omitempty"`
	// Fetched came from the object store and are not archived again.
	Fetched  []job.Dependency `json:"fetched,omitempty"`
	Bytes    int64            `json:"bytes"`    // of Files
	MaxBytes int64            `json:"maxBytes"` // the cap on files besides stdout, stderr and run
}

// ManifestFile is one file of a manifest.
type ManifestFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Reason string `json:"reason,omitempty"` // why it was skipped
}

// alwaysArchived are archived whatever the cap: what the job printed, and
// what ran.
var alwaysArchived = map[string]bool{"stdout": true, "stderr": true, "run": true}

// installDirs hold what was installed from the object store (and what setup
// files unpacked there, such as a whole Spark distribution): they are not
// archived, but named in the manifest. jinn/setup.log and jinn/failed are.
var installDirs = map[string]bool{"jinn/applications": true, "jinn/cluster": true, "jinn/command": true, "jinn/job": true}

// excluded returns the ArchiveExclude pattern that p matches, or "".
func (e *executor) excluded(p string) string {
	for _, pat := range e.w.disk.cfg.ArchiveExclude {
		if ok, _ := filepath.Match(pat, p); ok {
			return pat
		}
		if ok, _ := filepath.Match(pat, filepath.Base(p)); ok {
			return pat
		}
	}
	return ""
}

// archive copies the job's directory to <archive>/jobs/<id>/output/ with a
// manifest beside it: stdout, stderr and run always, the other files unless
// excluded or past the size cap, and none of the files fetched from the
// store nor the directories they were installed in (the manifest names
// them). It holds the lease meanwhile.
func (e *executor) archive(ctx context.Context) archived {
	if e.w.archive == nil {
		return archived{status: job.ArchiveDisabled}
	}
	loc := e.w.archive.URI(store.JobPrefix(e.spec.ID))
	root, err := os.OpenRoot(e.dir)
	if err != nil {
		return archived{status: job.ArchiveNoFiles} // it never got a directory
	}
	defer root.Close()
	stop, _ := e.holdLease()
	defer stop()
	start := time.Now()

	fetched := map[string]bool{}
	for _, d := range e.spec.Files {
		if p, err := store.CleanKey(d.Path); err == nil {
			fetched[p] = true
		}
	}
	m := Manifest{Job: e.spec.ID, Attempt: e.attempt, Worker: e.w.cfg.ID, Fetched: e.spec.Files, MaxBytes: e.w.disk.cfg.ArchiveMaxBytes}
	var first, rest []ManifestFile
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && installDirs[p] {
			m.Skipped = append(m.Skipped, ManifestFile{Path: p + "/", Reason: "installed from the object store (see fetched)"})
			return fs.SkipDir
		}
		if d.IsDir() || fetched[p] || p == finishedMark {
			return nil
		}
		if !d.Type().IsRegular() {
			m.Skipped = append(m.Skipped, ManifestFile{Path: p, Reason: "not a regular file"})
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := ManifestFile{Path: p, Size: info.Size()}
		switch {
		case alwaysArchived[p]:
			first = append(first, f)
		case e.excluded(p) != "":
			f.Reason = "excluded by " + e.excluded(p)
			m.Skipped = append(m.Skipped, f)
		default:
			rest = append(rest, f)
		}
		return nil
	})
	if err != nil {
		return archived{status: job.ArchiveFailed, location: loc, message: "read the job directory: " + err.Error()}
	}
	var capped int64
	m.Files = first
	for _, f := range rest {
		if capped+f.Size > m.MaxBytes {
			f.Reason = fmt.Sprintf("past the archive's size cap of %d bytes", m.MaxBytes)
			m.Skipped = append(m.Skipped, f)
			continue
		}
		capped += f.Size
		m.Files = append(m.Files, f)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.w.disk.cfg.ArchiveConcurrency)
	for _, f := range m.Files {
		m.Bytes += f.Size
		g.Go(func() error {
			r, err := root.Open(f.Path)
			if err != nil {
				return err
			}
			defer r.Close()
			return e.w.archive.Put(gctx, store.JobKey(e.spec.ID, f.Path), r)
		})
	}
	if err := g.Wait(); err != nil {
		e.log.Error("archive failed", "location", loc, "error", err)
		return archived{status: job.ArchiveFailed, location: loc, message: "archive to " + loc + ": " + err.Error()}
	}
	m.Archived = time.Now().UTC()
	data, _ := json.MarshalIndent(m, "", "  ")
	if err := e.w.archive.Put(ctx, store.ManifestKey(e.spec.ID), bytes.NewReader(data)); err != nil {
		return archived{status: job.ArchiveFailed, location: loc, message: "archive manifest to " + loc + ": " + err.Error()}
	}
	e.log.Debug("archived", "location", loc, "files", len(m.Files), "bytes", m.Bytes, "skipped", len(m.Skipped), "took", time.Since(start).Round(time.Millisecond))
	return archived{status: job.ArchiveDone, location: loc}
}
