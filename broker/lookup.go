package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/job"
)

// ErrNoMessage means the stream holds no message for the job: it was never
// queued, or it was acked (its final status was written), or NATS lost it.
var ErrNoMessage = errors.New("no message in the stream")

// QueuedJob finds the message of job id in JINN_JOBS, whatever its cluster,
// and returns its spec and stream sequence. A message is in the stream from
// its publish until its ack, so this answers "is this job still queued or
// running?" without Redis. It fails with ErrNoMessage when there is none.
func (b *Broker) QueuedJob(ctx context.Context, id string) (*job.Spec, uint64, error) {
	if err := job.ValidateID("id", id); err != nil {
		return nil, 0, err // never let an id put a wildcard into the subject
	}
	msg, err := b.jobs.GetLastMsgForSubject(ctx, jobsPrefix+"*."+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, fmt.Errorf("job %s: %w", id, ErrNoMessage)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("look up job %s: %w", id, err)
	}
	var spec job.Spec
	if err := json.Unmarshal(msg.Data, &spec); err != nil {
		return nil, 0, fmt.Errorf("job %s: bad message: %w", id, err)
	}
	return &spec, msg.Sequence, nil
}

// JobPending reports whether the message at stream sequence seq of JINN_JOBS
// is still there: pending or waiting for redelivery. Work-queue retention
// removes a message when it is acked, so false means no attempt can come
// from it any more.
func (b *Broker) JobPending(ctx context.Context, seq uint64) (bool, error) {
	_, err := b.jobs.GetMsg(ctx, seq)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("look up message %d: %w", seq, err)
	}
}

// LeaderKV opens the jinn_leader bucket, whose entries expire ttl after
// their last write: a leader that stops renewing loses its entry, and with
// it the leadership. An existing bucket is opened as it is, never changed:
// a scheduler started with another TTL must not shorten the lease of the
// leader in office (scheduler.Leader adopts the bucket's TTL).
func (b *Broker) LeaderKV(ctx context.Context, ttl time.Duration) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := b.untilReady(ctx, "bucket "+LeaderBucket, func(ctx context.Context) (err error) {
		kv, err = b.JS.KeyValue(ctx, LeaderBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil // created below
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", LeaderBucket, err)
	}
	if kv != nil {
		return kv, nil
	}
	return b.KeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaderBucket,
		Description: "leader election of the schedulers; the revision is the fencing token",
		History:     1,
		TTL:         ttl,
	})
}
