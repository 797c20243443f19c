package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
)

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Events land in JINN_EVENTS in order; a final status announced twice is kept once.
func TestEventsStreamKeepsEventsOnce(t *testing.T) {
	srv, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := broker.Connect(ctx, broker.Config{URL: srv.ClientURL(), EventsMaxAge: time.Hour}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)

	now := time.Now().UTC()
	for _, ev := range []job.Event{
		{ID: "j1", Status: job.Queued, Time: now},
		{ID: "j2", Status: job.Queued, Time: now}, // another job's: not among j1's
		{ID: "j1", Status: job.Claimed, Attempt: 1, Time: now},
		{ID: "j1", Status: job.Running, Attempt: 1, Time: now},
		{ID: "j1", Status: job.Lost, Attempt: 1, Time: now},
		{ID: "j1", Status: job.Claimed, Attempt: 2, Time: now}, // a stale attempt's late event still counts: another attempt
		{ID: "j1", Status: job.Lost, Attempt: 2, Time: now},    // the same final status again: dropped
	} {
		b.PublishEvent(ev)
	}
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []job.Status{job.Queued, job.Claimed, job.Running, job.Lost, job.Claimed}
	var got []job.Status
	waitUntil(t, 5*time.Second, func() bool {
		evs, err := b.JobEvents(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, ev := range evs {
			got = append(got, ev.Status)
		}
		return len(got) >= len(want)
	})
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	st, err := b.JS.Stream(ctx, broker.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if age := st.CachedInfo().Config.MaxAge; age != time.Hour {
		t.Fatalf("max age %s, want 1h", age)
	}
}

// A lost connection to NATS counts in jinn_nats_errors_total.
func TestNATSDisconnectCounted(t *testing.T) {
	srv, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := broker.Connect(ctx, broker.Config{URL: srv.ClientURL()}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	before := testutil.ToFloat64(metrics.NATSErrors.WithLabelValues("disconnect"))
	srv.Shutdown()
	srv.WaitForShutdown()
	waitUntil(t, 5*time.Second, func() bool {
		return testutil.ToFloat64(metrics.NATSErrors.WithLabelValues("disconnect")) > before
	})
}
