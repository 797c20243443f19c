package client

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/job"
)

// startBroker runs an embedded NATS server with jinn's streams.
func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	log := hclog.NewNullLogger()
	srv, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := broker.Connect(ctx, broker.Config{URL: srv.ClientURL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestPublisherSubmit(t *testing.T) {
	b := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := NewPublisher(b.JS)

	tmpl := &job.Request{Name: "n", Command: []string{"type:exec"}, Args: []string{"true"}}
	id1, err := p.Submit(ctx, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if !uuidV7.MatchString(id1) {
		t.Errorf("id %q is not a lower-case UUIDv7", id1)
	}
	if tmpl.ID != "" {
		t.Errorf("Submit changed the template: id = %q", tmpl.ID)
	}
	id2, err := p.Submit(ctx, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id1 {
		t.Errorf("two submits of one template got the same id %s", id1)
	}
	// The same id again is de-duplicated by JetStream.
	for range 2 {
		if id, err := p.Submit(ctx, &job.Request{ID: "mine", Command: []string{"type:exec"}}); err != nil || id != "mine" {
			t.Fatalf("Submit = %q, %v", id, err)
		}
	}

	st, err := b.JS.Stream(ctx, broker.SubmitStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Errorf("stream holds %d messages, want 3", info.State.Msgs)
	}
	msg, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != broker.SubmitSubject || msg.Header.Get(jetstream.MsgIDHeader) != id1 {
		t.Errorf("message on %s with id %q", msg.Subject, msg.Header.Get(jetstream.MsgIDHeader))
	}
	var got job.Request
	if err := json.Unmarshal(msg.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != id1 || got.Name != "n" || got.Args[0] != "true" {
		t.Errorf("published request = %+v", got)
	}
}

func TestPublisherValidates(t *testing.T) {
	// A bad request is refused before anything is published: js is never used.
	p := NewPublisher(nil)
	_, err := p.Submit(context.Background(), &job.Request{Command: []string{"type:exec"}, Memory: -1})
	var fe *job.FieldError
	if !errors.As(err, &fe) || fe.Field != "memory" {
		t.Fatalf("err = %v, want a FieldError on memory", err)
	}
}
