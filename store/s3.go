package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/jinn-fleet/jinn/job"
)

// S3Config configures the S3 client. Zero fields take the defaults beside them.
type S3Config struct {
	// Endpoint overrides the S3 endpoint for an S3-compatible store (MinIO,
	// Ceph, gofakes3), e.g. http://127.0.0.1:9000. Default: AWS S3 of the
	// region.
	Endpoint string
	// Region of the buckets. Default: the standard chain's (AWS_REGION, the
	// shared config), else us-east-1.
	Region string
	// PathStyle addresses objects as endpoint/bucket/key instead of
	// bucket.endpoint/key. Most S3-compatible stores need it. Default false.
	PathStyle bool
	// AccessKeyID and SecretAccessKey are static credentials. Default: the
	// standard chain (AWS_ACCESS_KEY_ID..., shared files, SSO, the instance
	// or task role).
	AccessKeyID     string
	SecretAccessKey string
	// MaxAttempts of each request, the first included; failures that may
	// pass (connection errors, 5xx, throttling) are retried with jittered
	// exponential backoff. Default 3.
	MaxAttempts int
	// MaxBackoff caps the wait between two attempts. Default 20s.
	MaxBackoff time.Duration
	// Timeout bounds connecting and then waiting for the answer's headers, so
	// that a store that is down or hangs fails a request instead of stalling
	// a job. It does not bound a transfer that makes progress. Default 30s.
	Timeout time.Duration
	// PartSize of multipart uploads and downloads. Default 8 MiB (S3's
	// minimum is 5 MiB).
	PartSize int64
	// MultipartThreshold is the size from which uploads go in parts.
	// Default 16 MiB.
	MultipartThreshold int64
	// Concurrency is how many parts of one object move at a time. Default 5.
	Concurrency int
}

// S3 is a client of S3 or an S3-compatible store.
type S3 struct {
	cfg      S3Config
	client   *s3.Client
	transfer *transfermanager.Client
}

// NewS3 makes a client. It reads the credential chain but does not call S3.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 20 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = 8 << 20
	}
	if cfg.MultipartThreshold <= 0 {
		cfg.MultipartThreshold = 16 << 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 5
	}
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = cfg.Timeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = cfg.Timeout
			t.TLSHandshakeTimeout = cfg.Timeout
		})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			// S3-compatible stores differ in their support of the newer
			// default checksums (trailing, aws-chunked); send them only
			// where an operation requires one.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		o.UsePathStyle = cfg.PathStyle
	})
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = cfg.PartSize
		o.MultipartUploadThreshold = cfg.MultipartThreshold
		o.Concurrency = cfg.Concurrency
		o.GetObjectType = tmtypes.GetObjectRanges // ranges work on every store; part numbers do not
		if cfg.Endpoint != "" {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.DisableChecksumValidation = true
		}
	})
	return &S3{cfg: cfg, client: client, transfer: tm}, nil
}

// where names the store in error messages.
func (c *S3) where() string {
	if c.cfg.Endpoint != "" {
		return c.cfg.Endpoint
	}
	return "AWS S3"
}

// objectErr turns an S3 error into ErrNoObject for a missing object, and
// otherwise says which object and which store failed.
func (c *S3) objectErr(op, bucket, key string, err error) error {
	uri := "s3://" + bucket + "/" + key
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("%s: %w", uri, ErrNoObject)
		case http.StatusForbidden:
			return fmt.Errorf("%s %s: access denied by %s: check the credentials and the bucket policy: %w", op, uri, c.where(), err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, uri, err)
	}
	return fmt.Errorf("%s %s: the object store at %s failed (after %d attempts): %w", op, uri, c.where(), c.cfg.MaxAttempts, err)
}

func (c *S3) head(ctx context.Context, bucket, key string) (ObjectInfo, error) {
	out, err := c.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return ObjectInfo{}, c.objectErr("stat", bucket, key, err)
	}
	return ObjectInfo{Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), ModTime: aws.ToTime(out.LastModified)}, nil
}

// download fetches an object into w, in ranges for a large one. It asks for
// the ETag it found first, so that the parts of an object replaced meanwhile
// are never mixed.
func (c *S3) download(ctx context.Context, bucket, key string, w io.WriterAt) (ObjectInfo, error) {
	info, err := c.head(ctx, bucket, key)
	if err != nil {
		return info, err
	}
	in := &transfermanager.DownloadObjectInput{Bucket: &bucket, Key: &key, WriterAt: w}
	if info.ETag != "" {
		in.IfMatch = aws.String(info.ETag)
	}
	if info.Size == 0 {
		return info, nil // nothing to fetch; some stores refuse a range of an empty object
	}
	if _, err := c.transfer.DownloadObject(ctx, in); err != nil {
		return info, c.objectErr("download", bucket, key, err)
	}
	return info, nil
}

// Archive returns the archive under s3://bucket/prefix.
func (c *S3) Archive(bucket, prefix string) *S3Archive {
	return &S3Archive{c: c, bucket: bucket, prefix: strings.Trim(prefix, "/")}
}

// S3Archive is an Archive in a bucket, under a prefix.
type S3Archive struct {
	c      *S3
	bucket string
	prefix string
}

// URI is the s3:// URI of key.
func (a *S3Archive) URI(key string) string { return "s3://" + a.bucket + "/" + keyOf(a.prefix, key) }

// Check makes sure the bucket can be reached, with a message that says what
// to check when it cannot.
func (a *S3Archive) Check(ctx context.Context) error {
	_, err := a.c.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &a.bucket})
	if err == nil {
		return nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("archive %s: no bucket %s at %s: create it, or give another --archive", a.URI(""), a.bucket, a.c.where())
	}
	return fmt.Errorf("archive %s: cannot reach the bucket at %s: check --s3-endpoint, --s3-region, --s3-path-style and the credentials (AWS_ACCESS_KEY_ID...): %w", a.URI(""), a.c.where(), err)
}

// Put uploads r to key, in parts when it is large.
func (a *S3Archive) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := CleanKey(key)
	if err != nil || k == "" {
		return fmt.Errorf("archive put %q: bad key", key)
	}
	full := keyOf(a.prefix, k)
	if _, err := a.c.transfer.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: &a.bucket, Key: &full, Body: r}); err != nil {
		return a.c.objectErr("upload", a.bucket, full, err)
	}
	return nil
}

// Open opens key for reading; reads fetch ranges from the current offset,
// so seeking (for HTTP range requests) costs nothing until the next read.
func (a *S3Archive) Open(ctx context.Context, key string) (Object, error) {
	k, err := CleanKey(key)
	if err != nil {
		return nil, err
	}
	if k == "" {
		return nil, fmt.Errorf("the archive's root: %w", ErrNoObject)
	}
	full := keyOf(a.prefix, k)
	info, err := a.c.head(ctx, a.bucket, full)
	if err != nil {
		return nil, err
	}
	return &s3Object{ctx: ctx, a: a, key: full, etag: info.ETag,
		info: job.File{Name: base(k), Size: info.Size, ModTime: info.ModTime}}, nil
}

// List returns the direct children of prefix: objects, and "directories"
// for the common prefixes below it.
func (a *S3Archive) List(ctx context.Context, prefix string) ([]job.File, error) {
	k, err := CleanKey(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	full := keyOf(a.prefix, k)
	if full != "" {
		full += "/"
	}
	var out []job.File
	p := s3.NewListObjectsV2Paginator(a.c.client, &s3.ListObjectsV2Input{Bucket: &a.bucket, Prefix: &full, Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, a.c.objectErr("list", a.bucket, full, err)
		}
		for _, cp := range page.CommonPrefixes {
			out = append(out, job.File{Name: base(aws.ToString(cp.Prefix)), Dir: true})
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), full)
			if name == "" || strings.Contains(name, "/") {
				continue
			}
			out = append(out, job.File{Name: name, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", prefix, ErrNoObject)
	}
	sortFiles(out)
	return out, nil
}

// s3Object reads an archived object by ranges.
type s3Object struct {
	ctx  context.Context
	a    *S3Archive
	key  string
	etag string
	info job.File
	off  int64
	body io.ReadCloser // open from off, nil after a seek
}

func (o *s3Object) Info() job.File { return o.info }

func (o *s3Object) Read(p []byte) (int, error) {
	if o.off >= o.info.Size {
		return 0, io.EOF
	}
	if o.body == nil {
		in := &s3.GetObjectInput{Bucket: &o.a.bucket, Key: &o.key, Range: aws.String(fmt.Sprintf("bytes=%d-", o.off))}
		if o.etag != "" {
			in.IfMatch = aws.String(o.etag)
		}
		out, err := o.a.c.client.GetObject(o.ctx, in)
		if err != nil {
			return 0, o.a.c.objectErr("read", o.a.bucket, o.key, err)
		}
		o.body = out.Body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	if errors.Is(err, io.EOF) && o.off < o.info.Size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += o.off
	case io.SeekEnd:
		offset += o.info.Size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	if offset != o.off && o.body != nil {
		_ = o.body.Close()
		o.body = nil
	}
	o.off = offset
	return offset, nil
}

func (o *s3Object) Close() error {
	if o.body != nil {
		return o.body.Close()
	}
	return nil
}
