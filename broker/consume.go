package broker

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Consume fetches up to batch messages at a time from cons and hands each to
// handle, until ctx ends. A failed fetch is logged and tried again a second
// later; an empty one (nothing arrived within 5 s) simply repeats. handle
// returns false to stop at once (the messages not handled come back after
// AckWait).
func Consume(ctx context.Context, cons jetstream.Consumer, batch int, log hclog.Logger, handle func(jetstream.Msg) bool) {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msgs, err := cons.Fetch(batch, jetstream.FetchContext(fctx))
		if err == nil {
			for msg := range msgs.Messages() {
				if !handle(msg) {
					cancel()
					return
				}
			}
			err = msgs.Error()
		}
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			log.Warn("fetch", "consumer", cons.CachedInfo().Name, "error", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
}
