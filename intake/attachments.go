package intake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/store"
)

// A job may come with files: POST /api/v1/jobs as multipart/form-data, with
// a part named "request" holding the job request as JSON and one part per
// file (a form file: its file name is the name the job sees, sanitized).
// Each file is spooled to a temporary file (checked against the limits and
// hashed), stored in the archive under jobs/<id>/attachments/<sha256>/<name>
// (the hash keeps a resubmission with other content from overwriting the
// first) and named in the request's attachments, which the worker fetches
// into the job's directory like any other file.

// AttachmentLimits bound what one submission may upload. Zero fields take
// the defaults beside them.
type AttachmentLimits struct {
	// MaxFile is the largest file, in bytes. Default 100 MiB.
	MaxFile int64
	// MaxTotal is the most bytes of all files of one job. Default 1 GiB.
	MaxTotal int64
	// MaxFiles is the most files of one job. Default job.MaxAttachments.
	MaxFiles int
}

func (l *AttachmentLimits) defaults() {
	if l.MaxFile <= 0 {
		l.MaxFile = 100 << 20
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = 1 << 30
	}
	if l.MaxFiles <= 0 || l.MaxFiles > job.MaxAttachments {
		l.MaxFiles = job.MaxAttachments
	}
}

// isMultipart reports whether a submission carries files.
func isMultipart(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}

// spooled is one received file.
type spooled struct {
	name string
	path string
	size int64
	sum  string
}

func tooLarge(format string, args ...any) *apiError {
	return errorf(http.StatusRequestEntityTooLarge, "too_large", format, args...)
}

// receive reads a multipart submission into req and stores its files. It
// returns a cleanup that removes the temporary files.
func (s *Server) receive(w http.ResponseWriter, r *http.Request, req *job.Request) (cleanup func(), err error) {
	lim := s.d.Attachments
	lim.defaults()
	var files []spooled
	cleanup = func() {
		for _, f := range files {
			_ = os.Remove(f.path)
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	// The request part and the parts' headers come on top of the files.
	body := http.MaxBytesReader(w, r.Body, lim.MaxTotal+maxBody+64<<10)
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return cleanup, badRequest("", "a multipart/form-data body needs a boundary in its Content-Type")
	}
	mr := multipart.NewReader(body, params["boundary"])
	seenRequest := false
	names := map[string]bool{}
	var total int64
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return cleanup, multipartErr(err, lim)
		}
		switch {
		case part.FormName() == "request" && part.FileName() == "":
			if seenRequest {
				return cleanup, badRequest("request", "two parts named request; send one")
			}
			seenRequest = true
			if err := decodePart(part, req); err != nil {
				return cleanup, err
			}
		case part.FileName() != "":
			name := job.SanitizeFileName(part.FileName())
			if name == "" {
				return cleanup, badRequest("attachments", "the file name %q leaves nothing usable; rename the file", part.FileName())
			}
			if names[name] {
				return cleanup, badRequest("attachments", "two files named %s (after sanitizing %q); rename one", name, part.FileName())
			}
			names[name] = true
			if len(files) == lim.MaxFiles {
				return cleanup, tooLarge("more than the limit of %d attached files", lim.MaxFiles)
			}
			f, err := spool(part, name, min(lim.MaxFile, lim.MaxTotal-total))
			if f.path != "" {
				files = append(files, f)
			}
			if err != nil {
				var big *partTooLarge
				switch {
				case errors.As(err, &big) && lim.MaxTotal-total < lim.MaxFile:
					return cleanup, tooLarge("the attached files are larger than the limit of %d bytes in total", lim.MaxTotal)
				case errors.As(err, &big):
					return cleanup, tooLarge("attached file %s is larger than the limit of %d bytes per file", name, lim.MaxFile)
				}
				return cleanup, multipartErr(err, lim)
			}
			total += f.size
		default:
			return cleanup, badRequest(part.FormName(), "unexpected part %q: send a part named request (the job as JSON) and file parts", part.FormName())
		}
	}
	if !seenRequest {
		return cleanup, badRequest("request", "no part named request: send the job request as JSON in a part named request, beside the file parts")
	}
	if len(req.Attachments) > 0 {
		return cleanup, badRequest("attachments", "attachments are filled in by jinn from the file parts; leave the field out")
	}
	if len(files) == 0 {
		return cleanup, nil
	}
	if s.d.Archive == nil {
		return cleanup, errorf(http.StatusServiceUnavailable, "unavailable", "this intake has no archive to keep attached files in: start it with --archive, or submit without files")
	}
	if req.ID == "" {
		req.ID = scheduler.NewID()
	}
	for _, f := range files {
		key := store.AttachmentKey(req.ID, f.sum[:16], f.name)
		req.Attachments = append(req.Attachments, job.Attachment{Name: f.name, URI: s.d.Archive.URI(key), Size: f.size, SHA256: f.sum})
	}
	if err := req.Validate(); err != nil {
		return cleanup, err // before anything is stored
	}
	for i, f := range files {
		if err := s.store(r, f, req.Attachments[i].URI, store.AttachmentKey(req.ID, f.sum[:16], f.name)); err != nil {
			return cleanup, err
		}
	}
	return cleanup, nil
}

// store puts one spooled file into the archive.
func (s *Server) store(r *http.Request, f spooled, uri, key string) error {
	in, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := s.d.Archive.Put(r.Context(), key, in); err != nil {
		s.log.Error("store attachment", "uri", uri, "error", err)
		return errorf(http.StatusServiceUnavailable, "unavailable", "could not store attached file %s: %s; retry with the same id", f.name, err.Error())
	}
	return nil
}

// decodePart reads the request part as strict JSON.
func decodePart(part io.Reader, req *job.Request) error {
	dec := json.NewDecoder(io.LimitReader(part, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		var be *apiError
		if errors.As(decodeErr(err), &be) {
			be.Message = "the request part: " + be.Message
			return be
		}
		return decodeErr(err)
	}
	if dec.More() {
		return badRequest("request", "the request part has data after its JSON value")
	}
	return nil
}

// partTooLarge is a file over its limit.
type partTooLarge struct{}

func (*partTooLarge) Error() string { return "too large" }

// spool copies a file part to a temporary file, at most max bytes, hashing it.
func spool(part io.Reader, name string, max int64) (spooled, error) {
	tmp, err := os.CreateTemp("", "jinn-attachment-*")
	if err != nil {
		return spooled{}, fmt.Errorf("spool attached file %s: %w", name, err)
	}
	f := spooled{name: name, path: tmp.Name()}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(part, max+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return f, err
	}
	if n > max {
		return f, &partTooLarge{}
	}
	f.size, f.sum = n, hex.EncodeToString(h.Sum(nil))
	return f, nil
}

// multipartErr turns a failure to read the body into the API's error.
func multipartErr(err error, lim AttachmentLimits) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge("the body is larger than the limit of %d bytes of attached files (plus the request)", lim.MaxTotal)
	}
	return badRequest("", "bad multipart body: %s", err.Error())
}
