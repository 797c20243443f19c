package client

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/job"
)

// Publisher submits jobs straight onto JetStream (subject jinn.submit), for
// producers that hold a NATS connection and want no HTTP hop. A scheduler
// records the job when it consumes the request, so the job becomes visible
// over HTTP a little after Submit returns.
type Publisher struct {
	js jetstream.JetStream
}

// NewPublisher returns a Publisher on js. The JINN_SUBMIT stream must exist
// (any jinn scheduler or intake creates it).
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Submit validates req and publishes it, returning once JetStream has stored
// it. A request without an id is given a new one (a UUIDv7); req itself is not
// changed, so a template request can be submitted many times. Publishing the
// same id again within the de-duplication window stores nothing new.
func (p *Publisher) Submit(ctx context.Context, req *job.Request) (string, error) {
	r := *req
	if r.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return "", fmt.Errorf("new job id: %w", err)
		}
		r.ID = strings.ToLower(id.String())
	}
	// Nobody answers a publish with a validation error: a bad request would
	// only show up later as an INVALID job. Say it now.
	if err := r.Validate(); err != nil {
		return "", fmt.Errorf("job request: %w", err)
	}
	if err := broker.PublishSubmitJS(ctx, p.js, &r); err != nil {
		return "", err
	}
	return r.ID, nil
}
