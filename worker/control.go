package worker

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

func (w *Worker) answerKill(req broker.ControlRequest) broker.ControlReply {
	e := w.executor(req.Job)
	if e == nil {
		return broker.ControlReply{NotFound: true, Error: "job " + req.Job + " does not run on worker " + w.cfg.ID}
	}
	e.kill()
	return broker.ControlReply{}
}

func (w *Worker) answerDrain(broker.ControlRequest) broker.ControlReply {
	w.Drain() // returns at once; its heartbeat says DRAINING before the reply
	return broker.ControlReply{}
}

// answerOutput stats, lists or reads a file of a job's live directory. The
// path is resolved inside the directory through os.Root, so neither ".." nor
// a symlink written by the job can reach outside it.
func (w *Worker) answerOutput(req broker.ControlRequest) broker.ControlReply {
	if job.ValidateID("job", req.Job) != nil {
		return broker.ControlReply{Error: "bad job id"}
	}
	rel, err := store.CleanKey(req.Path)
	if err != nil {
		return broker.ControlReply{Error: err.Error()}
	}
	if rel == "" {
		rel = "."
	}
	root, err := os.OpenRoot(filepath.Join(w.cfg.DataDir, "jobs", req.Job))
	if err != nil {
		return broker.ControlReply{NotFound: true}
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return broker.ControlReply{NotFound: true}
		}
		return broker.ControlReply{Error: err.Error()}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return broker.ControlReply{Error: err.Error()}
	}
	info := &job.File{Name: st.Name(), Size: st.Size(), ModTime: st.ModTime(), Dir: st.IsDir()}
	rep := broker.ControlReply{Info: info}
	if st.IsDir() {
		if rep.Entries, err = store.ListDir(root.FS(), rel); err != nil {
			return broker.ControlReply{Error: err.Error()}
		}
		return rep
	}
	if req.Length <= 0 {
		return rep
	}
	buf := make([]byte, min(req.Length, broker.MaxChunk))
	n, err := f.ReadAt(buf, req.Offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return broker.ControlReply{Error: err.Error()}
	}
	rep.Data = buf[:n]
	return rep
}
