package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/job"
)

// EventsStream keeps every status event (jinn.events.>) for consumers that
// need them all, in order, and cannot miss one: the webhook notifier
// (scheduler/notify.go), or an operator's own consumer.
const EventsStream = "JINN_EVENTS"

// eventsStream is the configuration of JINN_EVENTS: limits retention (every
// consumer sees every event; events expire after EventsMaxAge), file
// storage, the broker's replicas. Events are published on core NATS, so a
// publish does not wait for the stream; the Nats-Msg-Id of eventMsg lets the
// stream drop an event announced twice (a retried write, a reaper and a
// worker settling the same job) within the de-duplication window.
func eventsStream(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "job status events, kept for consumers that need them all (webhooks)",
		Subjects:    []string{eventsAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.EventsMaxAge,
		Duplicates:  min(cfg.DedupWindow, cfg.EventsMaxAge),
		Discard:     jetstream.DiscardOld,
		MaxMsgSize:  1 << 20,
	}
}

// EventMsgID identifies an event for de-duplication: a terminal status
// happens once per job; any other once per attempt.
func EventMsgID(ev job.Event) string {
	if ev.Status.Terminal() {
		return ev.ID + "." + string(ev.Status)
	}
	return ev.ID + "." + string(ev.Status) + "." + strconv.Itoa(ev.Attempt)
}

func eventMsg(ev job.Event, data []byte) *nats.Msg {
	m := nats.NewMsg(EventSubject(ev.ID))
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, EventMsgID(ev))
	return m
}

// EventConsumer returns the durable pull consumer name on JINN_EVENTS,
// creating it if needed: every process that uses the same name shares its
// deliveries (each event goes to one of them). ackWait bounds one delivery
// attempt; maxDeliver bounds the attempts (-1: no bound).
func (b *Broker) EventConsumer(ctx context.Context, name, description string, ackWait time.Duration, maxDeliver int) (jetstream.Consumer, error) {
	c, err := b.JS.CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   description,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    maxDeliver,
		MaxAckPending: 10000,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		Replicas:      b.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", name, EventsStream, err)
	}
	return c, nil
}

// JobEvents returns the events JINN_EVENTS holds for one job, in the order
// the stream received them.
func (b *Broker) JobEvents(ctx context.Context, id string) ([]job.Event, error) {
	c, err := b.JS.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{EventSubject(id)}})
	if err != nil {
		return nil, fmt.Errorf("read events of job %s: %w", id, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read events of job %s: %w", id, err)
	}
	var out []job.Event
	for n := info.NumPending; n > 0; n-- {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return out, fmt.Errorf("read events of job %s: %w", id, err)
		}
		var ev job.Event
		if err := json.Unmarshal(m.Data(), &ev); err == nil {
			out = append(out, ev)
		}
	}
	return out, nil
}
