package intake

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/store"
)

func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	var req job.Request
	if isMultipart(r) { // with files: attachments.go
		cleanup, err := s.receive(w, r, &req)
		defer cleanup()
		if err != nil {
			return err
		}
	} else if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := authorizeSubmit(r, &req); err != nil { // auth.go
		return err
	}
	j, created, err := s.d.Admitter.Admit(r.Context(), &req)
	var rejected *scheduler.RejectedError
	var limited *store.ActiveLimitError
	switch {
	case err == nil:
	case errors.As(err, &limited):
		// Genie's active-limit: nothing was recorded; the same request may
		// be sent again once the user has room.
		e := errorf(http.StatusTooManyRequests, "too_many_active_jobs", "%s", limited.Error())
		writeJSON(w, e.Status, map[string]any{"error": e, "limit": map[string]any{
			"user": limited.User, "limit": limited.Limit, "active": limited.Active}})
		return nil
	case errors.As(err, &rejected):
		e := errorf(http.StatusUnprocessableEntity, "unprocessable", "%s", rejected.Error())
		writeJSON(w, e.Status, map[string]any{"error": e, "job": rejected.Job})
		return nil
	case errors.Is(err, store.ErrConflict):
		e := conflict("job %s exists with a different request; choose another id", req.ID)
		e.Field = "id"
		return e
	case errors.Is(err, scheduler.ErrUnavailable):
		return errorf(http.StatusServiceUnavailable, "unavailable", "%s; retry with the same id", err.Error())
	default:
		return err
	}
	w.Header().Set("Location", "/api/v1/jobs/"+j.ID)
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, j)
	return nil
}

// lookup reads a job named by the path, with a 404 that says what to do.
func (s *Server) lookup(r *http.Request) (*job.Job, error) {
	id := r.PathValue("id")
	if err := job.ValidateID("id", id); err != nil {
		return nil, err
	}
	j, err := s.d.Store.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		j, err = s.recovered(r.Context(), id)
	}
	if err != nil {
		return nil, err
	}
	if err := authorizeJob(r, j); err != nil { // auth.go: a user's own jobs only
		return nil, err
	}
	return j, nil
}

// recovered finds a job that has no record in Redis: a finished job whose
// record expired or was lost is read from its archived record; a job whose
// message is still in JINN_JOBS is queued or running, and its record is
// being rebuilt by the worker that holds it (Redis restarted empty).
func (s *Server) recovered(ctx context.Context, id string) (*job.Job, error) {
	j, err := store.ArchivedJob(ctx, s.d.Archive, id)
	if err == nil {
		return j, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("read archived job", "job", id, "error", err)
	}
	if _, _, err := s.d.Broker.QueuedJob(ctx, id); err == nil {
		e := errorf(http.StatusServiceUnavailable, "recovering",
			"job %s is unknown to the live view but is still queued or running; its record is being recovered: retry in a few seconds", id)
		return nil, e
	} else if !errors.Is(err, broker.ErrNoMessage) {
		s.log.Warn("look up a job's message", "job", id, "error", err)
	}
	return nil, notFound("no job %s (finished jobs leave the live view after the retention period)", id)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	j, err := s.lookup(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.Filter{User: q.Get("user"), Cluster: q.Get("cluster"), Tag: q.Get("tag"), Cursor: q.Get("cursor")}
	if f.Tag != "" {
		if err := job.ValidateTags("tag", []string{f.Tag}); err != nil {
			return badRequest("tag", "%q is not a valid tag: use 1-128 characters of letters, digits and ._:/=@+-", f.Tag)
		}
	}
	if f.User != "" {
		if err := job.ValidateUser("user", f.User); err != nil {
			return err
		}
	}
	if f.Cluster != "" {
		if err := job.ValidateName("cluster", f.Cluster); err != nil {
			return err
		}
	}
	if st := q.Get("status"); st != "" {
		status, err := job.ParseStatus(st)
		if err != nil {
			return badRequest("status", "%s", err.Error())
		}
		f.Status = status
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit", "limit must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	jobs, next, err := s.d.Store.List(r.Context(), f)
	if err != nil {
		if f.Cursor != "" {
			return badRequest("cursor", "%s", err.Error())
		}
		return err
	}
	if jobs == nil {
		jobs = []job.Job{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs, "next": next})
	return nil
}

func (s *Server) killJob(w http.ResponseWriter, r *http.Request) error {
	j, err := s.lookup(r)
	if err != nil {
		return err
	}
	if j.Status.Terminal() { // perhaps read from the archive: Kill would not find it
		return conflict("job %s is %s; only unfinished jobs can be killed", j.ID, j.Status)
	}
	outcome, st, worker, err := s.d.Store.Kill(r.Context(), j.ID)
	if err != nil {
		return err
	}
	switch outcome {
	case store.KillMissing:
		return notFound("no job %s", j.ID)
	case store.KillTerminal:
		return conflict("job %s is %s; only unfinished jobs can be killed", j.ID, st)
	case store.KillDone:
		s.d.Broker.PublishEvent(job.Event{ID: j.ID, Status: job.Killed, Message: "killed before it ran", Time: time.Now().UTC()})
		metrics.JobFinished(j.Cluster, j.Command, string(job.Killed), -1)
	case store.KillSignal:
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, err := s.d.Broker.Ask(ctx, worker, broker.VerbKill, broker.ControlRequest{Job: j.ID}); err != nil {
			// The request is recorded: the worker ends the job at its next step.
			s.log.Warn("kill: worker did not answer", "job", j.ID, "worker", worker, "error", err)
		}
	}
	j, err = s.d.Store.Get(r.Context(), j.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, j)
	return nil
}
