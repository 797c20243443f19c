package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// A job's output is read from its worker while the job runs (any intake can
// ask any worker over NATS) and from the archive once it has finished. The
// worker archives before it writes the final status, so a finished job's
// archive is complete.

// source is where a job's files are read now.
type source interface {
	// stat returns the file's info and, for a directory, its entries.
	stat(ctx context.Context, rel string) (*job.File, []job.File, error)
	open(ctx context.Context, rel string, info *job.File) (io.ReadSeeker, error)
}

var errNoFile = errors.New("no such file")

// sourceFor picks the worker for an active job, the archive otherwise; if
// the worker no longer has the file, the archive is asked.
func (s *Server) sourceFor(j *job.Job) []source {
	var out []source
	if j.Status.Active() && j.Worker != "" {
		out = append(out, &workerSource{b: s.d.Broker, worker: j.Worker, id: j.ID})
	}
	if s.d.Archive != nil {
		out = append(out, &archiveSource{a: s.d.Archive, id: j.ID})
	}
	return out
}

// find returns the first source that has rel.
func (s *Server) find(ctx context.Context, j *job.Job, rel string) (source, *job.File, []job.File, error) {
	for _, src := range s.sourceFor(j) {
		info, entries, err := src.stat(ctx, rel)
		if errors.Is(err, errNoFile) {
			continue
		}
		if err != nil {
			return nil, nil, nil, err
		}
		return src, info, entries, nil
	}
	return nil, nil, nil, errNoFile
}

func (s *Server) output(w http.ResponseWriter, r *http.Request) error {
	j, err := s.lookup(r)
	if err != nil {
		return err
	}
	rel, err := store.CleanKey(r.PathValue("path"))
	if err != nil {
		return badRequest("path", "%s", err.Error())
	}
	src, info, entries, err := s.find(r.Context(), j, rel)
	if errors.Is(err, errNoFile) {
		if rel == "" {
			return notFound("job %s has no output yet (it is %s)", j.ID, j.Status)
		}
		return notFound("job %s has no file %s", j.ID, rel)
	}
	if err != nil {
		return err
	}
	if info.Dir {
		if entries == nil {
			entries = []job.File{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"path": rel, "entries": entries})
		return nil
	}
	rs, err := src.open(r.Context(), rel, info)
	if err != nil {
		return err
	}
	if c, ok := rs.(io.Closer); ok {
		defer c.Close()
	}
	if w.Header().Get("Content-Type") == "" && (rel == "stdout" || rel == "stderr") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	http.ServeContent(w, r, info.Name, info.ModTime, rs)
	return nil
}

// logs streams stdout or stderr; with follow=true it keeps streaming until the
// job has ended and everything it wrote was sent.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	j, err := s.lookup(r)
	if err != nil {
		return err
	}
	stream := r.URL.Query().Get("stream")
	switch stream {
	case "":
		stream = "stdout"
	case "stdout", "stderr":
	default:
		return badRequest("stream", "stream must be stdout or stderr, not %q", stream)
	}
	follow := r.URL.Query().Get("follow") == "true"
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	flusher, _ := w.(http.Flusher)

	// A status event wakes the follower at once; the poll covers output
	// written between events.
	wake := make(chan struct{}, 1)
	if follow {
		sub, err := s.d.Broker.SubscribeEvents(j.ID, func(job.Event) {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		if err == nil {
			defer func() { _ = sub.Unsubscribe() }()
		}
	}
	ctx := r.Context()
	var offset int64
	wrote := false
	for {
		finished := j.Status.Terminal() // read before the output: then the output is complete
		n, err := s.copyFrom(ctx, w, j, stream, offset)
		offset += n
		if n > 0 {
			wrote = true
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil && !errors.Is(err, errNoFile) {
			if !wrote {
				return err
			}
			s.log.Warn("logs: read failed mid-stream", "job", j.ID, "error", err)
			return nil
		}
		if finished || !follow {
			if !wrote && flusher != nil {
				flusher.Flush()
			}
			return nil
		}
		if !wrote && flusher != nil {
			flusher.Flush() // send the headers: the client knows the stream is open
			wrote = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(s.FollowPoll):
		}
		if j, err = s.d.Store.Get(ctx, j.ID); err != nil {
			return nil
		}
	}
}

// copyFrom writes a stream's bytes from offset to its current end.
func (s *Server) copyFrom(ctx context.Context, w io.Writer, j *job.Job, stream string, offset int64) (int64, error) {
	src, info, _, err := s.find(ctx, j, stream)
	if err != nil {
		return 0, err
	}
	if info.Size <= offset {
		return 0, nil
	}
	rs, err := src.open(ctx, stream, info)
	if err != nil {
		return 0, err
	}
	if c, ok := rs.(io.Closer); ok {
		defer c.Close()
	}
	if _, err := rs.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, io.LimitReader(rs, info.Size-offset))
}

// workerSource reads a running job's directory from its worker.
type workerSource struct {
	b      *broker.Broker
	worker string
	id     string
}

func (ws *workerSource) ask(ctx context.Context, req broker.ControlRequest) (*broker.ControlReply, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rep, err := ws.b.Ask(ctx, ws.worker, broker.VerbOutput, req)
	if errors.Is(err, broker.ErrNoWorker) {
		return nil, errNoFile // gone: the archive is next
	}
	if err != nil {
		return nil, err
	}
	if rep.NotFound {
		return nil, errNoFile
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("worker %s: %s", ws.worker, rep.Error)
	}
	return rep, nil
}

func (ws *workerSource) stat(ctx context.Context, rel string) (*job.File, []job.File, error) {
	rep, err := ws.ask(ctx, broker.ControlRequest{Job: ws.id, Path: rel})
	if err != nil {
		return nil, nil, err
	}
	return rep.Info, rep.Entries, nil
}

func (ws *workerSource) open(ctx context.Context, rel string, info *job.File) (io.ReadSeeker, error) {
	return &remoteFile{ctx: ctx, src: ws, path: rel, size: info.Size}, nil
}

// remoteFile reads a worker's file in chunks, for http.ServeContent (which
// seeks for Range requests) and for log streaming.
type remoteFile struct {
	ctx  context.Context
	src  *workerSource
	path string
	size int64
	off  int64
}

func (f *remoteFile) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), f.size-f.off, broker.MaxChunk))
	rep, err := f.src.ask(f.ctx, broker.ControlRequest{Job: f.src.id, Path: f.path, Offset: f.off, Length: n})
	if err != nil {
		return 0, err
	}
	if len(rep.Data) == 0 {
		return 0, io.EOF
	}
	c := copy(p, rep.Data)
	f.off += int64(c)
	return c, nil
}

func (f *remoteFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	f.off = offset
	return offset, nil
}

// archiveSource reads a finished job's archived directory.
type archiveSource struct {
	a  store.Archive
	id string
}

func (as *archiveSource) stat(ctx context.Context, rel string) (*job.File, []job.File, error) {
	o, err := as.a.Open(ctx, store.JobKey(as.id, rel))
	if err == nil {
		info := o.Info()
		o.Close()
		return &info, nil, nil
	}
	entries, lerr := as.a.List(ctx, store.JobKey(as.id, rel)+"/")
	if lerr == nil {
		return &job.File{Name: rel, Dir: true}, entries, nil
	}
	if errors.Is(err, store.ErrNoObject) && errors.Is(lerr, store.ErrNoObject) {
		return nil, nil, errNoFile
	}
	return nil, nil, err
}

func (as *archiveSource) open(ctx context.Context, rel string, _ *job.File) (io.ReadSeeker, error) {
	return as.a.Open(ctx, store.JobKey(as.id, rel))
}
