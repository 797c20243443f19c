package intake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jinn-fleet/jinn/job"
)

// A job's status changes reach HTTP clients two ways: live, as server-sent
// events relayed from NATS (jinn.events.<id>), and after the fact, as the
// history the store's scripts keep beside each job. The web UI shows the
// history and then follows the events.

const (
	// eventBuffer is how many events wait for a slow client before newer
	// ones are dropped (and the client told to resync).
	eventBuffer = 256
	// eventKeepAlive is how often an idle stream sends a comment, so that
	// proxies and load balancers do not close it.
	eventKeepAlive = 15 * time.Second
)

// events answers GET /api/v1/events: a text/event-stream of status changes,
// of every job or, with ?job=<id>, of one. Each is
//
//	event: status
//	data: <job.Event JSON>
//
// Events are best effort, as on NATS. When the client reads too slowly to
// keep up, the stream drops events and sends "event: resync": the client
// should read the state it shows again.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("job")
	if id != "" {
		if err := job.ValidateID("job", id); err != nil {
			return err
		}
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return errorf(http.StatusInternalServerError, "internal", "this server cannot stream responses")
	}
	ch := make(chan job.Event, eventBuffer)
	var dropped atomic.Bool
	deliver := func(ev job.Event) {
		select {
		case ch <- ev:
		default:
			dropped.Store(true)
		}
	}
	var sub *nats.Subscription
	var err error
	if id != "" {
		sub, err = s.d.Broker.SubscribeEvents(id, deliver)
	} else {
		sub, err = s.d.Broker.SubscribeAllEvents(deliver)
	}
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// retry: how long a browser's EventSource waits before reconnecting.
	if _, err := fmt.Fprint(w, "retry: 2000\n: jinn status events\n\n"); err != nil {
		return nil
	}
	flusher.Flush()

	keepAlive := time.NewTicker(eventKeepAlive)
	defer keepAlive.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return nil
		case <-s.stop:
			return nil
		case ev := <-ch:
			data, _ := json.Marshal(ev)
			_, err = fmt.Fprintf(w, "event: status\ndata: %s\n\n", data)
			if err == nil && len(ch) == 0 && dropped.Swap(false) {
				_, err = fmt.Fprint(w, "event: resync\ndata: {}\n\n")
			}
		case <-keepAlive.C:
			_, err = fmt.Fprint(w, ": keep-alive\n\n")
		}
		if err != nil {
			return nil // the client went away
		}
		flusher.Flush()
	}
}

// Shutdown ends the open event streams. http.Server.Shutdown waits for
// active requests, and a stream is one until its client leaves: register
// Shutdown with http.Server.RegisterOnShutdown so that a stopping intake
// does not wait for browsers.
func (s *Server) Shutdown() { s.stopOnce.Do(func() { close(s.stop) }) }

// history answers GET /api/v1/jobs/{id}/history: the job's status changes,
// oldest first, each a job.Event (the store keeps the last
// store.HistoryKept). A job whose record has expired (read from its archive)
// has an empty history.
func (s *Server) history(w http.ResponseWriter, r *http.Request) error {
	j, err := s.lookup(r)
	if err != nil {
		return err
	}
	h, err := s.d.Store.History(r.Context(), j.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": j.ID, "status": j.Status, "history": h})
	return nil
}
