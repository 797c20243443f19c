package worker

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/store"
)

// FilesConfig is how a worker fetches, keeps and archives job files. Zero
// fields take the defaults beside them.
type FilesConfig struct {
	// FetchConcurrency is how many files of one job are fetched at a time.
	// Default 4.
	FetchConcurrency int
	// CacheSize is how many bytes the cache of fetched files keeps; the
	// least recently used entries go first. Default 10 GiB.
	CacheSize int64
	// JobDirRetention is how long a finished job's local directory stays
	// after its archive was written (the archive keeps it for good). Default
	// 1h; negative removes it at once. KeepJobDirs keeps it until the disk
	// is short.
	JobDirRetention time.Duration
	// MinFreeDisk is the free space (bytes) the worker keeps on its data
	// directory's file system: below it, finished job directories (oldest
	// first) and then cache entries are removed at once. Default 5% of the
	// file system.
	MinFreeDisk int64
	// JanitorInterval is how often directories and disk space are checked.
	// Default 1m.
	JanitorInterval time.Duration
	// ArchiveMaxBytes caps what a job's directory adds to its archive
	// besides stdout, stderr and run (always archived); files past the cap
	// are listed in the manifest as skipped. Default 1 GiB.
	ArchiveMaxBytes int64
	// ArchiveExclude are glob patterns (path.Match) of files not archived,
	// matched against the path in the job directory and the base name, e.g.
	// "*.tmp", "cache/*". Default none.
	ArchiveExclude []string
	// ArchiveConcurrency is how many files are uploaded at a time. Default 4.
	ArchiveConcurrency int
}

func (c *FilesConfig) defaults() {
	if c.FetchConcurrency <= 0 {
		c.FetchConcurrency = 4
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 10 << 30
	}
	if c.JobDirRetention == 0 {
		c.JobDirRetention = time.Hour
	}
	if c.JanitorInterval <= 0 {
		c.JanitorInterval = time.Minute
	}
	if c.ArchiveMaxBytes <= 0 {
		c.ArchiveMaxBytes = 1 << 30
	}
	if c.ArchiveConcurrency <= 0 {
		c.ArchiveConcurrency = 4
	}
}

// finishedMark is written into a job's directory once its attempt is
// settled; its time starts the retention.
const finishedMark = "jinn/finished"

// disk owns the worker's local disk: the cache of fetched files and the job
// directories, which the janitor removes after their retention and at once
// when the disk is short (Genie's nodes failed when their disks filled).
type disk struct {
	cfg     FilesConfig
	keep    bool // KeepJobDirs
	jobs    string
	cache   *cache
	running func(id string) bool
	log     hclog.Logger
	now     func() time.Time
	free    func() (free, total uint64, err error)
}

func newDisk(dataDir string, cfg FilesConfig, keep bool, uris *store.URIs, running func(string) bool, log hclog.Logger) (*disk, error) {
	cfg.defaults()
	d := &disk{cfg: cfg, keep: keep, jobs: filepath.Join(dataDir, "jobs"), running: running, log: log.Named("disk"), now: time.Now}
	d.free = func() (uint64, uint64, error) { return freeSpace(dataDir) }
	if uris != nil {
		c, err := newCache(filepath.Join(dataDir, "cache"), uris, cfg.CacheSize, d.log)
		if err != nil {
			return nil, err
		}
		d.cache = c
	}
	return d, nil
}

// freeSpace returns the bytes available to the worker and the size of the
// file system that holds dir.
func freeSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// finished marks a settled job's directory, or removes it at once when it
// is not to be kept.
func (d *disk) finished(dir string) {
	if d.cfg.JobDirRetention < 0 && !d.keep {
		if err := os.RemoveAll(dir); err != nil {
			d.log.Warn("remove job directory", "dir", dir, "error", err)
		}
		return
	}
	_ = os.MkdirAll(filepath.Join(dir, "jinn"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, finishedMark), nil, 0o644); err != nil {
		d.log.Warn("mark job directory finished", "dir", dir, "error", err)
	}
}

// run sweeps every JanitorInterval until ctx ends.
func (d *disk) run(ctx context.Context) {
	t := time.NewTicker(d.cfg.JanitorInterval)
	defer t.Stop()
	d.sweep()
	for {
		select {
		case <-t.C:
			d.sweep()
		case <-ctx.Done():
			return
		}
	}
}

// jobDir is a job directory the janitor may remove.
type jobDir struct {
	path     string
	finished time.Time
}

// idle lists the job directories of jobs not running here, oldest first. A
// directory without the finished mark belonged to a worker that died: its
// own modification time stands for the finish.
func (d *disk) idle() []jobDir {
	entries, err := os.ReadDir(d.jobs)
	if err != nil {
		return nil
	}
	var out []jobDir
	for _, e := range entries {
		if !e.IsDir() || d.running(e.Name()) {
			continue
		}
		p := filepath.Join(d.jobs, e.Name())
		st, err := os.Stat(filepath.Join(p, finishedMark))
		if err != nil {
			if st, err = os.Stat(p); err != nil {
				continue
			}
		}
		out = append(out, jobDir{path: p, finished: st.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].finished.Before(out[j].finished) })
	return out
}

// sweep removes the directories past their retention, then makes room while
// the disk is short.
func (d *disk) sweep() {
	dirs := d.idle()
	if !d.keep {
		rest := dirs[:0]
		for _, j := range dirs {
			if d.now().Sub(j.finished) >= d.cfg.JobDirRetention {
				d.remove(j, "retention")
				continue
			}
			rest = append(rest, j)
		}
		dirs = rest
	}
	free, total, err := d.free()
	if err != nil {
		d.log.Warn("free disk space", "error", err)
		return
	}
	want := uint64(d.cfg.MinFreeDisk)
	if d.cfg.MinFreeDisk <= 0 {
		want = total / 20
	}
	if free >= want {
		return
	}
	d.log.Warn("disk short: removing finished job directories, oldest first", "free_bytes", free, "want_bytes", want)
	for _, j := range dirs {
		d.remove(j, "disk short")
		if free, _, err = d.free(); err != nil || free >= want {
			return
		}
	}
	if d.cache != nil {
		freed := d.cache.prune(0)
		d.log.Warn("disk short: emptied the file cache", "freed_bytes", freed)
	}
}

func (d *disk) remove(j jobDir, why string) {
	if err := os.RemoveAll(j.path); err != nil {
		d.log.Warn("remove job directory", "dir", j.path, "error", err)
		return
	}
	d.log.Debug("removed job directory", "dir", j.path, "why", why)
}
