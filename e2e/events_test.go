package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
)

func withNotify(n scheduler.NotifyConfig) option { return func(c *fleet.Config) { c.Notify = n } }

// hook is a webhook receiver: it answers the first failures POSTs with 500
// and records every POST it gets.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	failures int
	got      []delivery
	arrived  chan struct{}
}

type delivery struct {
	header http.Header
	body   []byte
	status int
}

func newHook(t *testing.T, failures int) *hook {
	h := &hook{failures: failures, arrived: make(chan struct{}, 100)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		code := http.StatusNoContent
		if h.failures > 0 {
			h.failures--
			code = http.StatusInternalServerError
		}
		h.got = append(h.got, delivery{r.Header.Clone(), body, code})
		h.mu.Unlock()
		w.WriteHeader(code)
		h.arrived <- struct{}{}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) deliveries() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// await returns once n POSTs arrived in all.
func (h *hook) await(t *testing.T, n int, within time.Duration) []delivery {
	t.Helper()
	deadline := time.After(within)
	for len(h.deliveries()) < n {
		select {
		case <-h.arrived:
		case <-deadline:
			t.Fatalf("%d webhook POSTs within %s, want %d", len(h.deliveries()), within, n)
		}
	}
	return h.deliveries()
}

// settled waits until the notifier has nothing in hand or pending: every
// event so far was acked (delivered, or given up).
func (s *sys) settled(t *testing.T) {
	t.Helper()
	cons, err := s.Broker.JS.Consumer(context.Background(), broker.EventsStream, "jinn-notify")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	})
}

func verify(t *testing.T, secret string, d delivery) scheduler.Notification {
	t.Helper()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(d.body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := d.header.Get("X-Jinn-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if ct := d.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var n scheduler.Notification
	if err := json.Unmarshal(d.body, &n); err != nil {
		t.Fatalf("body %q: %v", d.body, err)
	}
	return n
}

func TestWebhookPerJobGetsOneSignedPOST(t *testing.T) {
	const secret = "s3cret"
	perJob, global := newHook(t, 0), newHook(t, 0)
	s := start(t, withNotify(scheduler.NotifyConfig{Webhooks: []string{global.URL}, Secret: secret}))

	other := s.wait(s.submit(bash("true")).ID, 20*time.Second) // no notify: only the global hook hears
	req := bash("echo hi")
	req.Name, req.User, req.Notify = "greeting", "alice", perJob.URL+"/hooks/jinn"
	j := s.wait(s.submit(req).ID, 20*time.Second)
	if j.Status != job.Succeeded {
		t.Fatalf("job ended %s: %s", j.Status, j.Message)
	}
	got := perJob.await(t, 1, 10*time.Second)
	s.settled(t)
	if got = perJob.deliveries(); len(got) != 1 {
		t.Fatalf("per-job webhook got %d POSTs, want 1", len(got))
	}
	n := verify(t, secret, got[0])
	if n.ID != j.ID || n.Status != job.Succeeded || n.Name != "greeting" || n.User != "alice" || n.Cluster != "local" || n.Command != "bash" || n.Attempt != 1 || n.ExitCode == nil || *n.ExitCode != 0 {
		t.Fatalf("notification %+v", n)
	}
	if d := got[0].header.Get("X-Jinn-Delivery"); d != j.ID+".SUCCEEDED" {
		t.Errorf("delivery id %q", d)
	}
	// The global webhook got both final statuses, once each, and nothing else.
	g := global.await(t, 2, 10*time.Second)
	if len(g) != 2 {
		t.Fatalf("global webhook got %d POSTs, want 2", len(g))
	}
	ids := []string{verify(t, secret, g[0]).ID, verify(t, secret, g[1]).ID}
	slices.Sort(ids)
	want := []string{other.ID, j.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("global webhook heard of %v, want %v", ids, want)
	}
}

func TestWebhookRetriedUntilItAnswers(t *testing.T) {
	h := newHook(t, 2) // fails twice, then succeeds
	s := start(t, withNotify(scheduler.NotifyConfig{Secret: "k", Backoff: 50 * time.Millisecond}))
	failed := testutil.ToFloat64(metrics.WebhookDeliveries.WithLabelValues("job", "failed"))
	delivered := testutil.ToFloat64(metrics.WebhookDeliveries.WithLabelValues("job", "delivered"))

	req := bash("exit 4")
	req.Notify = h.URL
	j := s.wait(s.submit(req).ID, 20*time.Second)
	got := h.await(t, 3, 20*time.Second)
	s.settled(t)
	if got = h.deliveries(); len(got) != 3 {
		t.Fatalf("%d POSTs, want 3", len(got))
	}
	for i, d := range got {
		n := verify(t, "k", d)
		if n.ID != j.ID || n.Status != job.Failed || n.ExitCode == nil || *n.ExitCode != 4 {
			t.Fatalf("POST %d: %+v", i+1, n)
		}
		if try := d.header.Get("X-Jinn-Try"); try != string(rune('1'+i)) {
			t.Errorf("POST %d: try header %q", i+1, try)
		}
		if d.header.Get("X-Jinn-Delivery") != got[0].header.Get("X-Jinn-Delivery") {
			t.Errorf("POST %d: a different delivery id", i+1)
		}
	}
	if got := testutil.ToFloat64(metrics.WebhookDeliveries.WithLabelValues("job", "failed")) - failed; got != 2 {
		t.Errorf("failed deliveries moved by %v, want 2", got)
	}
	if got := testutil.ToFloat64(metrics.WebhookDeliveries.WithLabelValues("job", "delivered")) - delivered; got != 1 {
		t.Errorf("delivered moved by %v, want 1", got)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	h := newHook(t, 1000)
	s := start(t, withNotify(scheduler.NotifyConfig{MaxTries: 2, Backoff: 20 * time.Millisecond}))
	gaveUp := testutil.ToFloat64(metrics.WebhookDeliveries.WithLabelValues("job", "gave_up"))
	req := bash("true")
	req.Notify = h.URL
	s.wait(s.submit(req).ID, 20*time.Second)
	h.await(t, 2, 20*time.Second)
	waitFor(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(metrics.WebhookDeliveries.WithLabelValues("job", "gave_up"))-gaveUp == 1
	})
	s.settled(t)
	if n := len(h.deliveries()); n != 2 {
		t.Fatalf("%d POSTs, want 2 (MaxTries)", n)
	}
}

func TestEventsStreamHoldsStatusChangesInOrder(t *testing.T) {
	s := start(t)
	j := s.wait(s.submit(bash("echo hi")).ID, 20*time.Second)
	want := []job.Status{job.Queued, job.Claimed, job.Init, job.Running, job.Succeeded}
	var got []job.Status
	waitFor(t, 10*time.Second, func() bool {
		evs, err := s.Broker.JobEvents(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, ev := range evs {
			if ev.ID != j.ID {
				t.Fatalf("event of job %s among job %s's", ev.ID, j.ID)
			}
			got = append(got, ev.Status)
		}
		return len(got) > 0 && got[len(got)-1].Terminal()
	})
	if !slices.Equal(got, want) {
		t.Fatalf("JINN_EVENTS holds %v, want %v", got, want)
	}
	info, err := s.Broker.JS.Stream(context.Background(), broker.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	if cfg.MaxAge != 24*time.Hour || !strings.HasPrefix(cfg.Subjects[0], "jinn.events.") {
		t.Fatalf("stream config: max age %s, subjects %v", cfg.MaxAge, cfg.Subjects)
	}
}

func TestNotifyURLValidatedAtSubmit(t *testing.T) {
	s := start(t)
	req := bash("true")
	req.Notify = "ftp://example.com/x"
	var e apiErr
	if code := s.do("POST", "/api/v1/jobs", req, &e); code != http.StatusBadRequest || e.Error.Field != "notify" {
		t.Fatalf("status %d, error %+v", code, e.Error)
	}
}

func TestGlobalWebhookWithAllGetsEveryStatus(t *testing.T) {
	h := newHook(t, 0)
	s := start(t, withNotify(scheduler.NotifyConfig{Webhooks: []string{h.URL}, All: true}))
	j := s.wait(s.submit(bash("true")).ID, 20*time.Second)
	h.await(t, 5, 10*time.Second)
	s.settled(t)
	var got []string
	for _, d := range h.deliveries() {
		if d.header.Get("X-Jinn-Signature") != "" {
			t.Error("signed without a secret")
		}
		var n scheduler.Notification
		if err := json.Unmarshal(d.body, &n); err != nil || n.ID != j.ID {
			t.Fatalf("body %s: %v", d.body, err)
		}
		got = append(got, string(n.Status))
	}
	slices.Sort(got) // delivered concurrently: in any order
	want := []string{"CLAIMED", "INIT", "QUEUED", "RUNNING", "SUCCEEDED"}
	if !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
}
