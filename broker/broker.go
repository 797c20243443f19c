package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
)

// Config says how to reach NATS and how the streams are laid out.
type Config struct {
	// URL of one or more NATS servers, comma separated. Default nats.DefaultURL.
	URL string
	// Name identifies this connection in the server's monitoring.
	Name string
	// Replicas of every stream and bucket: 1 on one server, 3 in a cluster.
	Replicas int
	// AckWait is how long a worker's lease on a job lasts without an
	// extension; a dead worker's job comes back after it. Default 30s.
	AckWait time.Duration
	// DedupWindow is how long a job id is remembered for de-duplication of
	// publishes. Default 10 minutes.
	DedupWindow time.Duration
	// StartupTimeout bounds the wait for JetStream at Connect. Default 60s.
	StartupTimeout time.Duration
	// EventsMaxAge is how long JINN_EVENTS keeps status events. Default 24h.
	EventsMaxAge time.Duration
	// Options are extra nats.Options (credentials, TLS, in-process server).
	Options []nats.Option
}

func (c *Config) defaults() {
	if c.URL == "" {
		c.URL = nats.DefaultURL
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 10 * time.Minute
	}
	if c.StartupTimeout <= 0 {
		c.StartupTimeout = time.Minute
	}
	if c.EventsMaxAge <= 0 {
		c.EventsMaxAge = 24 * time.Hour
	}
}

// Broker is a connection to NATS with jinn's streams in place.
type Broker struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	cfg Config
	log hclog.Logger

	jobs jetstream.Stream // JINN_JOBS
}

// Connect connects to NATS and makes sure jinn's streams exist.
func Connect(ctx context.Context, cfg Config, log hclog.Logger) (*Broker, error) {
	cfg.defaults()
	opts := append([]nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				metrics.NATSError("disconnect")
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			metrics.NATSError("async")
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("nats error", "subject", subject, "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted()) }),
	}, cfg.Options...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", cfg.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b := &Broker{NC: nc, JS: js, cfg: cfg, log: log}
	if err := b.waitForStreams(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// Close drains the connection.
func (b *Broker) Close() { _ = b.NC.Drain() }

// AckWait is the lease length of a job attempt.
func (b *Broker) AckWait() time.Duration { return b.cfg.AckWait }

// waitForStreams makes the streams, retrying while JetStream is not ready.
func (b *Broker) waitForStreams(ctx context.Context) error {
	return b.untilReady(ctx, "streams", b.ensureStreams)
}

// untilReady runs op, retrying while JetStream is not ready yet: a NATS
// cluster that is still electing its meta leader, or a server that has just
// started or restarted. Each try gets 5 s; it gives up when ctx ends or
// after StartupTimeout.
func (b *Broker) untilReady(ctx context.Context, what string, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.StartupTimeout)
	defer cancel()
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		err := op(actx)
		acancel()
		if err == nil {
			return nil
		}
		b.log.Info("waiting for JetStream", "for", what, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (JetStream not ready after %s: is the NATS server or cluster up, with JetStream enabled?)", err, b.cfg.StartupTimeout)
		case <-time.After(wait):
		}
	}
}

func (b *Broker) ensureStreams(ctx context.Context) error {
	streams := []jetstream.StreamConfig{{
		Name:        SubmitStream,
		Description: "job requests from producers, consumed by schedulers",
		Subjects:    []string{SubmitSubject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.DedupWindow,
		MaxMsgSize:  2 << 20,
	}, {
		Name:        JobsStream,
		Description: "resolved jobs, one subject per cluster, pulled by workers",
		Subjects:    []string{jobsPrefix + "*.*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.DedupWindow,
		MaxMsgSize:  2 << 20,
	}, eventsStream(b.cfg)}
	for _, sc := range streams {
		st, err := b.JS.CreateOrUpdateStream(ctx, sc)
		if err != nil {
			return fmt.Errorf("create stream %s: %w", sc.Name, err)
		}
		if sc.Name == JobsStream {
			b.jobs = st // for lookups by id or sequence (lookup.go)
		}
	}
	return nil
}

// KeyValue opens (creating if needed) a KV bucket with the broker's replicas.
func (b *Broker) KeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = b.cfg.Replicas
	cfg.Storage = jetstream.FileStorage
	var kv jetstream.KeyValue
	err := b.untilReady(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) (err error) {
		kv, err = b.JS.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// PublishSubmit puts a job request onto jinn.submit, de-duplicated by id, and
// returns once JetStream has stored it.
func (b *Broker) PublishSubmit(ctx context.Context, req *job.Request) error {
	return publishSubmit(ctx, b.JS, req)
}

// PublishSubmitJS is PublishSubmit for a producer holding only a JetStream
// handle (the Go client).
func PublishSubmitJS(ctx context.Context, js jetstream.JetStream, req *job.Request) error {
	return publishSubmit(ctx, js, req)
}

func publishSubmit(ctx context.Context, js jetstream.JetStream, req *job.Request) error {
	if req.ID == "" {
		return errors.New("publish submit: the request needs an id for de-duplication")
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request %s: %w", req.ID, err)
	}
	if _, err := js.Publish(ctx, SubmitSubject, data, jetstream.WithMsgID(req.ID)); err != nil {
		return fmt.Errorf("publish request %s: %w", req.ID, err)
	}
	return nil
}

// PublishJob puts a resolved job onto its cluster's subject, de-duplicated by id.
func (b *Broker) PublishJob(ctx context.Context, spec *job.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", spec.ID, err)
	}
	if _, err := b.JS.Publish(ctx, JobSubject(spec.Cluster, spec.ID), data, jetstream.WithMsgID(spec.ID)); err != nil {
		return fmt.Errorf("queue job %s on %s: %w", spec.ID, spec.Cluster, err)
	}
	return nil
}

// JobConsumer returns the durable pull consumer of a cluster's jobs,
// creating it if needed. Every worker serving the cluster shares it.
func (b *Broker) JobConsumer(ctx context.Context, cluster string) (jetstream.Consumer, error) {
	c, err := b.JS.CreateOrUpdateConsumer(ctx, JobsStream, jetstream.ConsumerConfig{
		Durable:       JobConsumer(cluster),
		Description:   "workers serving cluster " + cluster,
		FilterSubject: JobFilter(cluster),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 100000,
		Replicas:      b.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer for cluster %s: %w", cluster, err)
	}
	return c, nil
}

// SubmitConsumer returns the durable pull consumer shared by all schedulers.
func (b *Broker) SubmitConsumer(ctx context.Context) (jetstream.Consumer, error) {
	c, err := b.JS.CreateOrUpdateConsumer(ctx, SubmitStream, jetstream.ConsumerConfig{
		Durable:       SubmitConsumer,
		Description:   "schedulers admitting job requests",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 10000,
		Replicas:      b.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("submit consumer: %w", err)
	}
	return c, nil
}

// PublishEvent announces a status change on jinn.events.<id>, which the
// stream JINN_EVENTS keeps (eventstream.go). Events are a convenience for
// live views and webhooks; losing one loses no job (the record is in Redis).
func (b *Broker) PublishEvent(ev job.Event) {
	data, _ := json.Marshal(ev)
	if err := b.NC.PublishMsg(eventMsg(ev, data)); err != nil {
		b.log.Debug("publish event", "job", ev.ID, "error", err)
	}
}

// SubscribeEvents delivers the status changes of one job until unsubscribed.
func (b *Broker) SubscribeEvents(id string, fn func(job.Event)) (*nats.Subscription, error) {
	return b.NC.Subscribe(EventSubject(id), func(m *nats.Msg) {
		var ev job.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			fn(ev)
		}
	})
}
