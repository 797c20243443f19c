package job

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// Files a job needs come from the object store, named by URI: s3://bucket/key
// or file:///absolute/path. A worker fetches them into the job's directory
// before the job runs and its run script sources the setup files, in Genie's
// order: the command's applications (in the command's order), the cluster,
// the command, the job.
//
// The job directory:
//
//	run                               the script that ran (written by the worker)
//	stdout, stderr                    the job's output
//	<dependency or attachment>        the job's own files, under their base names
//	jinn/applications/<name>/...      each application's files and setup
//	jinn/cluster/<name>/...           the cluster's config files and setup
//	jinn/command/<name>/...           the command's config files and setup
//	jinn/job/<setup>                  the job's setup file
//	jinn/setup.log                    what the setup files printed

// Limits on the files of one request.
const (
	MaxDependencies = 256
	MaxAttachments  = 100
	MaxURILength    = 2048
)

// ReservedNames are the names of the job directory jinn uses itself; no
// dependency or attachment may take one.
var ReservedNames = []string{"run", "stdout", "stderr", "jinn"}

// Attachment is a file uploaded with a request, kept in the object store
// until the worker places it in the job directory as Name. The intake fills
// these in from a multipart submission.
type Attachment struct {
	Name   string `json:"name"`
	URI    string `json:"uri"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// Dependency is one file a worker fetches into a job's directory.
type Dependency struct {
	URI  string `json:"uri"`
	Path string `json:"path"` // relative to the job directory
	For  string `json:"for"`  // "application spark", "cluster prod", "command spark", "job", "attachment"
}

// SetupFile is a bash file the job's run script sources before the command.
type SetupFile struct {
	For  string `json:"for"`
	Path string `json:"path"` // the fetched file, relative to the job directory
	// Dir is the directory of its entity's files, relative to the job
	// directory; the script exports it as JINN_SETUP_DIR while it sources
	// the file.
	Dir string `json:"dir"`
}

// ArchiveStatus says whether a job's files reached the archive.
type ArchiveStatus string

const (
	ArchivePending  ArchiveStatus = "PENDING"  // the job has not ended
	ArchiveDone     ArchiveStatus = "ARCHIVED" // its files and record are in the archive
	ArchiveFailed   ArchiveStatus = "FAILED"   // the archive could not be written; see archiveMessage
	ArchiveDisabled ArchiveStatus = "DISABLED" // its worker has no archive
	ArchiveNoFiles  ArchiveStatus = "NO_FILES" // it ended without a directory to archive
)

// ArchiveOf is the archive status to show for a job in status st whose
// record holds recorded: a job that ended without its worker saying
// otherwise (never ran, killed before it started, its worker lost) has no
// files; one that has not ended is pending.
func ArchiveOf(st Status, recorded ArchiveStatus) ArchiveStatus {
	switch {
	case recorded != "" && recorded != ArchivePending:
		return recorded
	case st.Terminal():
		return ArchiveNoFiles
	}
	return ArchivePending
}

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ValidateURI checks the URI of a file: s3://bucket/key or file:///path, not
// a "directory" (a trailing slash), with a base name that can be a file name.
func ValidateURI(field, uri string) error {
	if len(uri) > MaxURILength {
		return fieldErr(field, "at most %d characters", MaxURILength)
	}
	if strings.ContainsAny(uri, "\x00\n\r") {
		return fieldErr(field, "contains a NUL byte or a line break")
	}
	var p string
	switch {
	case strings.HasPrefix(uri, "s3://"):
		bucket, key, _ := strings.Cut(strings.TrimPrefix(uri, "s3://"), "/")
		if !bucketRE.MatchString(bucket) {
			return fieldErr(field, "%q: %q is not a valid bucket name", uri, bucket)
		}
		if key == "" {
			return fieldErr(field, "%q names a bucket, not an object: give s3://%s/key", uri, bucket)
		}
		p = key
	case strings.HasPrefix(uri, "file://"):
		u, err := url.Parse(uri)
		if err != nil || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return fieldErr(field, "%q: a file URI is file:///absolute/path", uri)
		}
		p = u.Path
	default:
		return fieldErr(field, "%q is not a file URI: use s3://bucket/key or file:///path", uri)
	}
	if strings.HasSuffix(p, "/") {
		return fieldErr(field, "%q ends with a slash: name a file, not a directory", uri)
	}
	if err := ValidateFileName(field, path.Base(p)); err != nil {
		return fieldErr(field, "%q: its base name %s", uri, strings.TrimPrefix(err.Error(), field+": "))
	}
	return nil
}

// BaseName is the name a file fetched from uri takes in a directory.
func BaseName(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.Scheme == "file" {
		return path.Base(u.Path)
	}
	return path.Base(uri)
}

// ValidateFileName checks a name that becomes a file of a job's directory.
func ValidateFileName(field, name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fieldErr(field, "%q is not a file name", name)
	case len(name) > 255:
		return fieldErr(field, "%q is longer than 255 bytes", name)
	case strings.ContainsAny(name, "/\\"):
		return fieldErr(field, "%q contains a slash", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fieldErr(field, "%q contains a control character", name)
		}
	}
	return nil
}

var unsafeNameRE = regexp.MustCompile(`[^A-Za-z0-9._+@=,-]+`)

// SanitizeFileName turns a file name sent by a client into a safe one: its
// last path element, with every run of characters other than letters,
// digits and ._+@=,- replaced by "_", and no leading dot run that would
// make it "." or "..". It returns "" when nothing usable is left.
func SanitizeFileName(name string) string {
	if i := strings.LastIndexAny(name, "/\\"); i >= 0 {
		name = name[i+1:]
	}
	name = unsafeNameRE.ReplaceAllString(name, "_")
	if strings.Trim(name, ".") == "" {
		return ""
	}
	if len(name) > 255 {
		name = name[:255]
	}
	return name
}

// validateRootName checks the name of a job's own file (a dependency or an
// attachment), which lands at the top of its directory.
func validateRootName(field, name string) error {
	if err := ValidateFileName(field, name); err != nil {
		return err
	}
	for _, r := range ReservedNames {
		if name == r {
			return fieldErr(field, "%q is reserved for jinn's own use in the job directory (%s); rename the file", name, strings.Join(ReservedNames, ", "))
		}
	}
	return nil
}

// validateURIs checks a list of file URIs.
func validateURIs(field string, uris []string) error {
	for i, u := range uris {
		if err := ValidateURI(fmt.Sprintf("%s[%d]", field, i), u); err != nil {
			return err
		}
	}
	return nil
}

// validateRequestFiles checks a request's dependencies, setup and
// attachments, and that no two of its own files take the same name.
func (r *Request) validateFiles() error {
	if len(r.Dependencies) > MaxDependencies {
		return fieldErr("dependencies", "at most %d, got %d", MaxDependencies, len(r.Dependencies))
	}
	if len(r.Attachments) > MaxAttachments {
		return fieldErr("attachments", "at most %d, got %d", MaxAttachments, len(r.Attachments))
	}
	names := map[string]string{} // name → what took it
	for i, d := range r.Dependencies {
		field := fmt.Sprintf("dependencies[%d]", i)
		if err := ValidateURI(field, d); err != nil {
			return err
		}
		name := BaseName(d)
		if err := validateRootName(field, name); err != nil {
			return err
		}
		if by, dup := names[name]; dup && by != d {
			return fieldErr(field, "%s and %s would both be %s in the job directory", by, d, name)
		}
		names[name] = d
	}
	if r.Setup != "" {
		if err := ValidateURI("setup", r.Setup); err != nil {
			return err
		}
	}
	for i, a := range r.Attachments {
		field := fmt.Sprintf("attachments[%d]", i)
		if err := validateRootName(field+".name", a.Name); err != nil {
			return err
		}
		if err := ValidateURI(field+".uri", a.URI); err != nil {
			return err
		}
		if a.Size < 0 {
			return fieldErr(field+".size", "negative")
		}
		if by, dup := names[a.Name]; dup {
			return fieldErr(field+".name", "%q is taken by %s", a.Name, by)
		}
		names[a.Name] = "attachment " + a.Name
	}
	return nil
}

// Plan returns what a worker installs for a job: the files to fetch, and the
// setup files to source in order (applications in the command's order, the
// cluster, the command, the job). apps are the command's applications, in
// its order. Two different URIs that would land on one path are an error
// that names both.
func Plan(apps []Application, cl Cluster, cmd Command, req *Request) ([]Dependency, []SetupFile, error) {
	var files []Dependency
	var setups []SetupFile
	at := map[string]string{} // path → URI
	add := func(uri, dir, who string) (string, error) {
		p := path.Join(dir, BaseName(uri))
		if prev, ok := at[p]; ok {
			if prev == uri {
				return p, nil
			}
			return "", fmt.Errorf("%s: %s and %s would both be %s in the job directory; rename one", who, prev, uri, p)
		}
		at[p] = uri
		files = append(files, Dependency{URI: uri, Path: p, For: who})
		return p, nil
	}
	entity := func(who, dir string, uris []string, setup string) error {
		for _, u := range uris {
			if _, err := add(u, dir, who); err != nil {
				return err
			}
		}
		if setup == "" {
			return nil
		}
		p, err := add(setup, dir, who)
		if err != nil {
			return err
		}
		setups = append(setups, SetupFile{For: who, Path: p, Dir: dir})
		return nil
	}
	for _, a := range apps {
		if err := entity("application "+a.Name, "jinn/applications/"+a.Name, a.Files, a.Setup); err != nil {
			return nil, nil, err
		}
	}
	if err := entity("cluster "+cl.Name, "jinn/cluster/"+cl.Name, cl.ConfigFiles, cl.Setup); err != nil {
		return nil, nil, err
	}
	if err := entity("command "+cmd.Name, "jinn/command/"+cmd.Name, cmd.ConfigFiles, cmd.Setup); err != nil {
		return nil, nil, err
	}
	if err := entity("job", ".", req.Dependencies, ""); err != nil {
		return nil, nil, err
	}
	for _, a := range req.Attachments {
		if prev, ok := at[a.Name]; ok {
			return nil, nil, fmt.Errorf("attachment %s: %s is already %s in the job directory", a.Name, prev, a.Name)
		}
		at[a.Name] = a.URI
		files = append(files, Dependency{URI: a.URI, Path: a.Name, For: "attachment"})
	}
	if req.Setup != "" {
		p := path.Join("jinn/job", BaseName(req.Setup))
		files = append(files, Dependency{URI: req.Setup, Path: p, For: "job"})
		setups = append(setups, SetupFile{For: "job", Path: p, Dir: "."})
	}
	return files, setups, nil
}
