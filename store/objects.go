package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// The object store holds what outlives a worker: the archive of finished
// jobs and the attachments of submitted ones, under one root (an Archive),
// and the files jobs depend on, named by URI anywhere (URIs). Two kinds of
// location: s3://bucket/key (S3 or an S3-compatible store) and file:///path
// (a local directory: the embedded default of `jinn up`, or a shared mount).

// ObjectInfo describes an object found by URI. ETag and Size identify its
// content for the workers' caches; a local file's ETag is made from its size
// and modification time.
type ObjectInfo struct {
	URI     string
	Size    int64
	ETag    string
	ModTime time.Time
}

// AttachmentKey is the archive key of a file attached to job id; sum (the
// start of its SHA-256) keeps a resubmission with other content from
// overwriting the first.
func AttachmentKey(id, sum, name string) string {
	return "jobs/" + id + "/attachments/" + sum + "/" + name
}

// ManifestKey is the archive key of the manifest of a job's archived files.
func ManifestKey(id string) string { return "jobs/" + id + "/manifest.json" }

// JobPrefix is the archive key under which everything of job id lies.
func JobPrefix(id string) string { return "jobs/" + id + "/" }

// Location is a parsed object URI.
type Location struct {
	Scheme string // "s3" or "file"
	Bucket string // s3 only
	Key    string // s3: the key (prefix); file: the absolute path
}

func (l Location) String() string {
	if l.Scheme == "s3" {
		return "s3://" + l.Bucket + "/" + l.Key
	}
	return "file://" + l.Key
}

// ParseLocation reads s3://bucket/key, file:///path or, for a local root, an
// absolute or relative path. Keys may be empty (a whole bucket) only where
// the caller allows it.
func ParseLocation(s string) (Location, error) {
	switch {
	case strings.HasPrefix(s, "s3://"):
		bucket, key, _ := strings.Cut(strings.TrimPrefix(s, "s3://"), "/")
		if err := job.ValidateURI("uri", "s3://"+bucket+"/x"); err != nil {
			return Location{}, fmt.Errorf("%q: bad bucket name %q", s, bucket)
		}
		return Location{Scheme: "s3", Bucket: bucket, Key: key}, nil
	case strings.HasPrefix(s, "file://"):
		u, err := url.Parse(s)
		if err != nil || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return Location{}, fmt.Errorf("%q: a file URI is file:///absolute/path", s)
		}
		return Location{Scheme: "file", Key: filepath.Clean(u.Path)}, nil
	case strings.Contains(s, "://"):
		return Location{}, fmt.Errorf("%q: only s3:// and file:// locations are supported", s)
	case s == "":
		return Location{}, errors.New("an empty location")
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Location{}, fmt.Errorf("%q: %w", s, err)
	}
	return Location{Scheme: "file", Key: abs}, nil
}

// ObjectsConfig says where the archive is and how S3 is reached.
type ObjectsConfig struct {
	// Archive is the root of the archive and the attachments:
	// s3://bucket/prefix, file:///path or a directory. Required.
	Archive string
	// S3 configures the S3 client, used for an s3:// archive and for s3://
	// dependencies whatever the archive is.
	S3 S3Config
}

// Objects is the object store of one process: its archive and a reader of
// objects by URI. Close releases them.
type Objects struct {
	Archive Archive
	URIs    *URIs
	close   func() error
}

// Close releases the archive.
func (o *Objects) Close() error {
	if o.close != nil {
		return o.close()
	}
	return nil
}

// OpenObjects opens the archive named by cfg.Archive and checks that it can
// be reached, so that a wrong bucket or endpoint fails at start-up and not
// with the first job. The S3 client is made at first use unless the archive
// needs it now.
func OpenObjects(ctx context.Context, cfg ObjectsConfig) (*Objects, error) {
	loc, err := ParseLocation(cfg.Archive)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	uris := &URIs{cfg: cfg.S3}
	if loc.Scheme == "file" {
		a, err := OpenLocalArchive(loc.Key)
		if err != nil {
			return nil, err
		}
		return &Objects{Archive: a, URIs: uris, close: a.Close}, nil
	}
	s3c, err := uris.s3(ctx)
	if err != nil {
		return nil, err
	}
	a := s3c.Archive(loc.Bucket, loc.Key)
	if err := a.Check(ctx); err != nil {
		return nil, err
	}
	return &Objects{Archive: a, URIs: uris}, nil
}

// URIs reads objects named by URI: s3://bucket/key through S3, file:///path
// from the local disk. It is safe for concurrent use.
type URIs struct {
	cfg    S3Config
	once   sync.Once
	client *S3
	err    error
}

// NewURIs returns a reader of objects by URI whose S3 client (made at first
// use) has cfg.
func NewURIs(cfg S3Config) *URIs { return &URIs{cfg: cfg} }

func (u *URIs) s3(ctx context.Context) (*S3, error) {
	u.once.Do(func() { u.client, u.err = NewS3(ctx, u.cfg) })
	return u.client, u.err
}

// Stat describes the object at uri. A missing object is ErrNoObject.
func (u *URIs) Stat(ctx context.Context, uri string) (ObjectInfo, error) {
	loc, err := ParseLocation(uri)
	if err != nil {
		return ObjectInfo{}, err
	}
	if loc.Scheme == "file" {
		st, err := os.Stat(loc.Key)
		if errors.Is(err, fs.ErrNotExist) {
			return ObjectInfo{}, fmt.Errorf("%s: %w", uri, ErrNoObject)
		}
		if err != nil {
			return ObjectInfo{}, err
		}
		if !st.Mode().IsRegular() {
			return ObjectInfo{}, fmt.Errorf("%s is not a regular file: %w", uri, ErrNoObject)
		}
		return ObjectInfo{URI: uri, Size: st.Size(), ModTime: st.ModTime(),
			ETag: fmt.Sprintf("%x-%x", st.Size(), st.ModTime().UnixNano())}, nil
	}
	c, err := u.s3(ctx)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := c.head(ctx, loc.Bucket, loc.Key)
	info.URI = uri
	return info, err
}

// Download writes the object at uri to w and returns what it wrote. Large S3
// objects are fetched in parts, several at a time.
func (u *URIs) Download(ctx context.Context, uri string, w io.WriterAt) (ObjectInfo, error) {
	loc, err := ParseLocation(uri)
	if err != nil {
		return ObjectInfo{}, err
	}
	if loc.Scheme == "file" {
		info, err := u.Stat(ctx, uri)
		if err != nil {
			return info, err
		}
		f, err := os.Open(loc.Key)
		if err != nil {
			return info, err
		}
		defer f.Close()
		n, err := io.Copy(io.NewOffsetWriter(w, 0), f)
		info.Size = n
		return info, err
	}
	c, err := u.s3(ctx)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := c.download(ctx, loc.Bucket, loc.Key, w)
	info.URI = uri
	return info, err
}

// keyOf joins a root prefix and a key.
func keyOf(prefix, key string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// base is the last element of a slash path.
func base(key string) string { return path.Base(strings.TrimSuffix(key, "/")) }

// sortFiles orders a listing by name.
func sortFiles(fs []job.File) {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
}
