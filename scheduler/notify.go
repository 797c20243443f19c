package scheduler

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// Webhook headers.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
	// under the webhook secret.
	SignatureHeader = "X-Jinn-Signature"
	// DeliveryHeader identifies the event (the same on every retry), so a
	// receiver can drop a repeat: delivery is at least once.
	DeliveryHeader = "X-Jinn-Delivery"
	// TryHeader is the try number of this delivery, from 1.
	TryHeader = "X-Jinn-Try"
)

// NotifyConfig configures the webhook notifier.
type NotifyConfig struct {
	// Webhooks are global webhook URLs: each gets every job's final status
	// (every status change with All).
	Webhooks []string
	// Secret signs every POST, the global webhooks' and the per-job ones'
	// (SignatureHeader). Empty: POSTs are not signed.
	Secret string
	// All sends every status change to the global webhooks, not only the
	// final ones. Per-job webhooks (job.Request.Notify) get the final one only.
	All bool
	// MaxTries bounds the tries of one event; then it is dropped with a log
	// line and jinn_webhook_deliveries_total{result="gave_up"}. Default 8.
	MaxTries int
	// Backoff is the delay before the second try, doubled for each next one
	// up to MaxBackoff. Defaults 1s and 5m.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds one POST. Default 10s.
	Timeout time.Duration
	// Consumer is the durable consumer on JINN_EVENTS that every scheduler
	// shares. Default "jinn-notify".
	Consumer string
	// Parallel is how many events are delivered at once. Default 8.
	Parallel int
	// Client sends the POSTs. Default an http.Client with Timeout.
	Client *http.Client
}

func (c *NotifyConfig) defaults() {
	if c.MaxTries <= 0 {
		c.MaxTries = 8
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Consumer == "" {
		c.Consumer = "jinn-notify"
	}
	if c.Parallel <= 0 {
		c.Parallel = 8
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: c.Timeout}
	}
}

// Notification is the body of a webhook POST: the status event and what
// the job is.
type Notification struct {
	job.Event
	Name    string `json:"name,omitempty"`
	User    string `json:"user,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	Command string `json:"command,omitempty"`
}

// Sign returns the SignatureHeader value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Notifier POSTs job events to webhooks. Every scheduler runs one, without a
// leader: they share a durable consumer on JINN_EVENTS, so each event is
// delivered by one of them, at least once. An event is acked when every
// webhook it is for answered 2xx, handed back with a growing delay
// (NakWithDelay) when one did not, and dropped after MaxTries.
type Notifier struct {
	cfg    NotifyConfig
	broker *broker.Broker
	store  *store.Store
	log    hclog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup

	// done remembers, per event message, the webhooks that already have it,
	// so a retry POSTs only to those that failed. It is a best effort: a retry
	// that another scheduler picks up POSTs to all of them again.
	mu   sync.Mutex
	done map[uint64]map[string]bool
}

// NewNotifier returns a notifier; Start starts it.
func NewNotifier(cfg NotifyConfig, b *broker.Broker, s *store.Store, log hclog.Logger) *Notifier {
	cfg.defaults()
	return &Notifier{cfg: cfg, broker: b, store: s, log: log.Named("notify"), done: map[uint64]map[string]bool{}}
}

// Start begins delivering.
func (n *Notifier) Start(ctx context.Context) error {
	// A delivery holds its message for every POST it makes, one at a time.
	ackWait := n.cfg.Timeout*time.Duration(len(n.cfg.Webhooks)+2) + 5*time.Second
	cons, err := n.broker.EventConsumer(ctx, n.cfg.Consumer, "schedulers delivering webhooks", ackWait, n.cfg.MaxTries)
	if err != nil {
		return err
	}
	ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	n.wg.Add(1)
	go n.loop(ctx, cons)
	return nil
}

// Stop stops delivering and waits for the deliveries in hand.
func (n *Notifier) Stop() {
	if n.cancel != nil {
		n.cancel()
		n.wg.Wait()
	}
}

func (n *Notifier) loop(ctx context.Context, cons jetstream.Consumer) {
	defer n.wg.Done()
	slots := make(chan struct{}, n.cfg.Parallel)
	var busy sync.WaitGroup
	defer busy.Wait()
	broker.Consume(ctx, cons, n.cfg.Parallel, n.log, func(msg jetstream.Msg) bool {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return false // the message comes back after AckWait
		}
		busy.Add(1)
		go func() {
			defer func() { <-slots; busy.Done() }()
			n.handle(ctx, msg)
		}()
		return true
	})
}

// target is one webhook an event goes to.
type target struct {
	url  string
	kind string // "job" or "global", the metric's label
}

// handle delivers one event to its webhooks.
func (n *Notifier) handle(ctx context.Context, msg jetstream.Msg) {
	var ev job.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || job.ValidateID("id", ev.ID) != nil {
		_ = msg.Term() // not an event of jinn's: nothing to deliver
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	final := ev.Status.Terminal()
	if !final && !(n.cfg.All && len(n.cfg.Webhooks) > 0) {
		_ = msg.Ack()
		return
	}
	note := Notification{Event: ev}
	var targets []target
	if final || n.cfg.All {
		for _, u := range n.cfg.Webhooks {
			targets = append(targets, target{u, "global"})
		}
	}
	j, err := n.store.Get(ctx, ev.ID)
	switch {
	case err == nil:
		note.Name, note.User, note.Cluster, note.Command = j.Name, j.User, j.Cluster, j.Command
		if final && j.Request != nil && j.Request.Notify != "" {
			targets = append(targets, target{j.Request.Notify, "job"})
		}
	case errors.Is(err, store.ErrNotFound):
		// Expired or lost with Redis: the global webhooks still hear of it.
	default:
		n.log.Warn("read the job of an event; will retry", "job", ev.ID, "error", err)
		n.retry(msg, md, ev, err)
		return
	}
	if len(targets) == 0 {
		_ = msg.Ack()
		return
	}
	body, err := json.Marshal(note)
	if err != nil {
		_ = msg.Term() // unreachable: a Notification always marshals
		return
	}
	seq := md.Sequence.Stream
	var failed []error
	for _, t := range targets {
		if n.delivered(seq, t.url) {
			continue
		}
		if err := n.post(ctx, t.url, body, ev, int(md.NumDelivered)); err != nil {
			metrics.Webhook(t.kind, "failed")
			failed = append(failed, fmt.Errorf("%s webhook %s: %w", t.kind, t.url, err))
			continue
		}
		metrics.Webhook(t.kind, "delivered")
		n.markDelivered(seq, t.url)
	}
	if len(failed) == 0 {
		n.forget(seq)
		_ = msg.Ack()
		return
	}
	if int(md.NumDelivered) >= n.cfg.MaxTries {
		for _, t := range targets {
			if !n.delivered(seq, t.url) {
				metrics.Webhook(t.kind, "gave_up")
			}
		}
		n.forget(seq)
		n.log.Error("webhook gave up: the event is dropped", "job", ev.ID, "status", ev.Status, "tries", md.NumDelivered, "error", errors.Join(failed...))
		_ = msg.Term()
		return
	}
	n.retry(msg, md, ev, errors.Join(failed...))
}

// retry hands the event back for another try after a growing delay.
func (n *Notifier) retry(msg jetstream.Msg, md *jetstream.MsgMetadata, ev job.Event, err error) {
	delay := n.backoff(int(md.NumDelivered))
	n.log.Info("webhook failed; will retry", "job", ev.ID, "status", ev.Status, "try", md.NumDelivered, "in", delay, "error", err)
	_ = msg.NakWithDelay(delay)
}

// backoff is the delay after the tries-th try: Backoff, doubled per try,
// at most MaxBackoff.
func (n *Notifier) backoff(tries int) time.Duration {
	d := n.cfg.Backoff
	for i := 1; i < tries && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.cfg.MaxBackoff)
}

// post sends one signed POST; any answer but 2xx is a failure.
func (n *Notifier) post(ctx context.Context, url string, body []byte, ev job.Event, try int) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jinn-webhook")
	req.Header.Set(DeliveryHeader, broker.EventMsgID(ev))
	req.Header.Set(TryHeader, strconv.Itoa(try))
	if n.cfg.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(n.cfg.Secret, body))
	}
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

func (n *Notifier) delivered(seq uint64, url string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.done[seq][url]
}

func (n *Notifier) markDelivered(seq uint64, url string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.done) > 10000 {
		clear(n.done) // retries that other schedulers finished; a best effort
	}
	if n.done[seq] == nil {
		n.done[seq] = map[string]bool{}
	}
	n.done[seq][url] = true
}

func (n *Notifier) forget(seq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.done, seq)
}
