package main

import (
	"flag"
	"os"
	"strings"
	"time"

	"github.com/jinn-fleet/jinn/intake"
	"github.com/jinn-fleet/jinn/store"
	"github.com/jinn-fleet/jinn/worker"
)

// Flags of the object store, job files and attachments (docs/files.md).

// s3Flags fill the S3 client's configuration.
func s3Flags(fs *flag.FlagSet, c *store.S3Config) {
	fs.StringVar(&c.Endpoint, "s3-endpoint", envString("JINN_S3_ENDPOINT", ""), "S3 endpoint `URL` of an S3-compatible store (MinIO...), e.g. http://127.0.0.1:9000; default AWS S3 (env JINN_S3_ENDPOINT)")
	fs.StringVar(&c.Region, "s3-region", envString("JINN_S3_REGION", ""), "S3 `region`; default the AWS configuration's, else us-east-1 (env JINN_S3_REGION)")
	fs.BoolVar(&c.PathStyle, "s3-path-style", os.Getenv("JINN_S3_PATH_STYLE") == "true", "address objects as endpoint/bucket/key, as most S3-compatible stores need (env JINN_S3_PATH_STYLE=true)")
	fs.IntVar(&c.MaxAttempts, "s3-max-attempts", envInt("JINN_S3_MAX_ATTEMPTS", 3), "attempts of each S3 request, retries included (env JINN_S3_MAX_ATTEMPTS)")
	fs.DurationVar(&c.Timeout, "s3-timeout", envDuration("JINN_S3_TIMEOUT", 30*time.Second), "how long to wait to connect to S3 and for its answer to begin (env JINN_S3_TIMEOUT)")
}

const mib = 1 << 20

// filesFlags are a worker's flags of job files; the function reads them
// after parsing.
func filesFlags(fs *flag.FlagSet) func() worker.FilesConfig {
	var c worker.FilesConfig
	fs.DurationVar(&c.JobDirRetention, "job-dir-retention", envDuration("JINN_JOB_DIR_RETENTION", time.Hour), "how long a finished job's local directory is kept after its archive; negative removes it at once (env JINN_JOB_DIR_RETENTION)")
	cache := fs.Int64("cache-size", int64(envInt("JINN_CACHE_SIZE", 10240)), "`MiB` the cache of fetched job files keeps (env JINN_CACHE_SIZE)")
	free := fs.Int64("min-free-disk", int64(envInt("JINN_MIN_FREE_DISK", 0)), "`MiB` kept free on the data directory's disk by removing finished job directories and then the cache; 0 is 5% of the disk (env JINN_MIN_FREE_DISK)")
	archiveMax := fs.Int64("archive-max", int64(envInt("JINN_ARCHIVE_MAX", 1024)), "`MiB` of a job's directory archived besides stdout, stderr and run (env JINN_ARCHIVE_MAX)")
	exclude := fs.String("archive-exclude", envString("JINN_ARCHIVE_EXCLUDE", ""), "glob `patterns` of job files not archived, comma separated, e.g. '*.tmp,cache/*' (env JINN_ARCHIVE_EXCLUDE)")
	return func() worker.FilesConfig {
		c.CacheSize, c.MinFreeDisk, c.ArchiveMaxBytes = *cache*mib, *free*mib, *archiveMax*mib
		for _, p := range strings.Split(*exclude, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.ArchiveExclude = append(c.ArchiveExclude, p)
			}
		}
		return c
	}
}

// attachmentFlags bound the files of a multipart submission.
func attachmentFlags(fs *flag.FlagSet) func() intake.AttachmentLimits {
	file := fs.Int64("max-attachment", int64(envInt("JINN_MAX_ATTACHMENT", 100)), "largest attached file in `MiB` (env JINN_MAX_ATTACHMENT)")
	total := fs.Int64("max-attachments", int64(envInt("JINN_MAX_ATTACHMENTS", 1024)), "`MiB` of all files attached to one job (env JINN_MAX_ATTACHMENTS)")
	return func() intake.AttachmentLimits {
		return intake.AttachmentLimits{MaxFile: *file * mib, MaxTotal: *total * mib}
	}
}
