package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Consumer admits the job requests producers publish on jinn.submit. Every
// scheduler runs one; they share a durable consumer, so each request is
// admitted by one of them at a time, and admission is idempotent by job id.
type Consumer struct {
	admit  *Admitter
	broker *broker.Broker
	log    hclog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewConsumer returns a consumer of jinn.submit.
func NewConsumer(a *Admitter, b *broker.Broker, log hclog.Logger) *Consumer {
	return &Consumer{admit: a, broker: b, log: log.Named("submit")}
}

// Start begins consuming.
func (c *Consumer) Start(ctx context.Context) error {
	cons, err := c.broker.SubmitConsumer(ctx)
	if err != nil {
		return err
	}
	ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.wg.Add(1)
	go c.loop(ctx, cons)
	return nil
}

// Stop stops consuming and waits for the request in hand.
func (c *Consumer) Stop() {
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
}

func (c *Consumer) loop(ctx context.Context, cons jetstream.Consumer) {
	defer c.wg.Done()
	broker.Consume(ctx, cons, 32, c.log, func(msg jetstream.Msg) bool {
		c.handle(ctx, msg)
		return true
	})
}

// handle admits one request. A request that can never be admitted is acked
// (and recorded INVALID when it has a usable id, so its producer can see
// why); a failure of NATS or Redis hands it back to be tried again.
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	var req job.Request
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		c.invalid(ctx, msg, "bad request: "+err.Error())
		return
	}
	if req.ID == "" {
		req.ID = msg.Headers().Get(jetstream.MsgIDHeader)
	}
	j, _, err := c.admit.Admit(ctx, &req)
	var fe *job.FieldError
	var rejected *RejectedError
	var limited *store.ActiveLimitError
	switch {
	case err == nil:
		c.log.Debug("admitted", "job", j.ID, "status", j.Status, "request", describe(&req))
	case errors.As(err, &fe):
		c.invalid(ctx, msg, "bad request: "+fe.Error())
		return
	case errors.As(err, &rejected):
		c.log.Info("request rejected", "job", req.ID, "reason", rejected.Error())
	case errors.Is(err, store.ErrConflict):
		c.log.Warn("request conflicts with an existing job of the same id; dropped", "job", req.ID)
	case errors.As(err, &limited):
		c.hold(msg, &req, limited) // userlimit.go
		return
	default:
		c.log.Warn("admission failed; will retry", "job", req.ID, "error", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}

// invalid records a request that cannot be decoded or validated as an
// INVALID job, when its message carries a usable id.
func (c *Consumer) invalid(ctx context.Context, msg jetstream.Msg, why string) {
	id := msg.Headers().Get(jetstream.MsgIDHeader)
	c.log.Warn("invalid request", "job", id, "reason", why)
	if job.ValidateID("id", id) == nil {
		j := &job.Job{ID: id, Request: &job.Request{ID: id}}
		if created, err := c.admit.store.Record(ctx, j); err == nil && created {
			_ = c.admit.store.Transition(ctx, id, job.Invalid, nil, store.Update{Message: why})
		}
	}
	_ = msg.Ack()
}
