package job

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on a request, so that a bad producer cannot hurt the fleet.
const (
	MaxArgs        = 4096
	MaxMemoryMiB   = 1 << 20 // 1 TiB
	MaxTimeoutSec  = 30 * 24 * 3600
	MaxRetries     = 10
	MaxNotifyLen   = 2048
	DefaultRetries = 2
)

// Request is what a producer asks for: run a command found by tags, on a cluster
// chosen by a priority-ordered list of tag sets, with these arguments.
type Request struct {
	// ID is optional and chosen by the client. The same id with the same request
	// returns the existing job; with a different request it is a conflict.
	ID   string   `json:"id,omitempty"`
	Name string   `json:"name,omitempty"`
	User string   `json:"user,omitempty"`
	Tags []string `json:"tags,omitempty"`
	// Command is the command criterion: every tag must be on the command.
	Command []string `json:"command"`
	// Clusters are cluster criteria in priority order; the first that matches an
	// UP cluster wins. Empty means any UP cluster that offers the command.
	Clusters [][]string        `json:"clusters,omitempty"`
	Args     []string          `json:"args,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	// Memory in MiB; 0 takes the command's default, then the global default.
	Memory int `json:"memory,omitempty"`
	// Timeout in seconds; 0 means none.
	Timeout int `json:"timeout,omitempty"`
	// Retries is how many more attempts a job gets when its worker dies under
	// it; nil means DefaultRetries. A job that fails on its own is not retried.
	Retries  *int            `json:"retries,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Dependencies are files (s3://bucket/key or file:///path) fetched into
	// the job directory, under their base names, before the job runs.
	Dependencies []string `json:"dependencies,omitempty"`
	// Setup is a bash file (a URI) sourced after the applications', the
	// cluster's and the command's setup files, just before the command.
	Setup string `json:"setup,omitempty"`
	// Attachments are files uploaded with the request (a multipart POST);
	// the intake stores them and fills this in.
	Attachments []Attachment `json:"attachments,omitempty"`
	// Notify is an http(s) URL that gets a signed POST of the job's final
	// status (the webhook of scheduler/notify.go); at most MaxNotifyLen bytes.
	Notify string `json:"notify,omitempty"`
}

// RetryLimit returns the number of retries, applying the default.
func (r *Request) RetryLimit() int {
	if r.Retries == nil {
		return DefaultRetries
	}
	return *r.Retries
}

// Validate checks every field; the first problem found is returned as a *FieldError.
func (r *Request) Validate() error {
	if r.ID != "" {
		if err := ValidateID("id", r.ID); err != nil {
			return err
		}
	}
	if len(r.Name) > 256 {
		return fieldErr("name", "at most 256 characters")
	}
	if r.User != "" {
		if err := ValidateUser("user", r.User); err != nil {
			return err
		}
	}
	if err := ValidateTags("tags", r.Tags); err != nil {
		return err
	}
	if len(r.Command) == 0 {
		return fieldErr("command", `required: the tags of the command to run, e.g. ["type:exec"]`)
	}
	if err := ValidateTags("command", r.Command); err != nil {
		return err
	}
	if len(r.Clusters) > 32 {
		return fieldErr("clusters", "at most 32 cluster criteria, got %d", len(r.Clusters))
	}
	for i, c := range r.Clusters {
		if len(c) == 0 {
			return fieldErr(fmt.Sprintf("clusters[%d]", i), "an empty criterion matches nothing; omit clusters to accept any cluster")
		}
		if err := ValidateTags(fmt.Sprintf("clusters[%d]", i), c); err != nil {
			return err
		}
	}
	if len(r.Args) > MaxArgs {
		return fieldErr("args", "at most %d arguments, got %d", MaxArgs, len(r.Args))
	}
	for i, a := range r.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return fieldErr(fmt.Sprintf("args[%d]", i), "contains a NUL byte")
		}
	}
	if err := ValidateEnv("env", r.Env); err != nil {
		return err
	}
	if r.Memory < 0 || r.Memory > MaxMemoryMiB {
		return fieldErr("memory", "must be between 0 and %d MiB, got %d", MaxMemoryMiB, r.Memory)
	}
	if r.Timeout < 0 || r.Timeout > MaxTimeoutSec {
		return fieldErr("timeout", "must be between 0 and %d seconds, got %d", MaxTimeoutSec, r.Timeout)
	}
	if r.Retries != nil && (*r.Retries < 0 || *r.Retries > MaxRetries) {
		return fieldErr("retries", "must be between 0 and %d, got %d", MaxRetries, *r.Retries)
	}
	if len(r.Metadata) > 0 && !json.Valid(r.Metadata) {
		return fieldErr("metadata", "not valid JSON")
	}
	if err := validateNotify(r.Notify); err != nil {
		return err
	}
	return r.validateFiles()
}

// validateNotify accepts an empty URL or an absolute http(s) URL with a host.
func validateNotify(u string) error {
	if u == "" {
		return nil
	}
	if len(u) > MaxNotifyLen {
		return fieldErr("notify", "at most %d bytes, got %d", MaxNotifyLen, len(u))
	}
	for _, c := range u {
		if c <= ' ' || c == 0x7f {
			return fieldErr("notify", "contains a space or a control character")
		}
	}
	p, err := url.Parse(u)
	if err != nil {
		return fieldErr("notify", "not a URL: %v", err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fieldErr("notify", `must be an http:// or https:// URL, e.g. "https://example.com/hooks/jinn"`)
	}
	if p.Host == "" {
		return fieldErr("notify", "the URL has no host")
	}
	return nil
}

// Fingerprint identifies the content of a request, its id aside, so that a
// resubmission with the same id can be told apart from a different request.
// Differences without meaning do not count: the order and repetition of tags
// within a set (job tags, the command criterion, each cluster criterion; the
// order of the cluster criteria does count), an omitted retries versus the
// default, and the whitespace and key order of the metadata.
func (r *Request) Fingerprint() string {
	c := *r
	c.ID = ""
	c.Tags = tagSet(r.Tags)
	c.Command = tagSet(r.Command)
	if r.Clusters != nil {
		c.Clusters = make([][]string, len(r.Clusters))
		for i, crit := range r.Clusters {
			c.Clusters[i] = tagSet(crit)
		}
	}
	n := r.RetryLimit()
	c.Retries = &n
	c.Metadata = nil
	b, err := json.Marshal(c) // maps marshal in key order: stable
	if err != nil {
		// Unreachable: every field of c marshals.
		panic("job: fingerprint: " + err.Error())
	}
	h := sha256.New()
	h.Write(b)
	h.Write([]byte{0})
	h.Write(canonicalJSON(r.Metadata))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// tagSet returns tags sorted and without repeats, in a new slice.
func tagSet(tags []string) []string {
	if tags == nil {
		return nil
	}
	s := slices.Clone(tags)
	slices.Sort(s)
	return slices.Compact(s)
}

// canonicalJSON rewrites raw with its object keys sorted and no whitespace,
// keeping numbers exactly as written (a float64 would merge large integers).
// Empty and null are the same: no metadata. JSON that is not UTF-8 is only
// compacted (decoding would turn every bad byte into U+FFFD and merge different
// documents), and raw that is not JSON is kept as it is; both go behind a marker
// byte that no JSON text starts with, so that they cannot collide with a
// canonical document.
func canonicalJSON(raw []byte) []byte {
	if len(raw) == 0 {
		return nil
	}
	if !json.Valid(raw) {
		return append([]byte{0xff}, raw...)
	}
	if !utf8.Valid(raw) {
		b := bytes.NewBuffer([]byte{0xfe})
		_ = json.Compact(b, raw) // cannot fail: raw is valid JSON
		return b.Bytes()
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return append([]byte{0xff}, raw...) // unreachable: raw is valid JSON
	}
	if v == nil {
		return nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return append([]byte{0xff}, raw...) // unreachable: v came from JSON
	}
	return out
}
