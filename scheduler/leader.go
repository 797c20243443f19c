package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaderConfig of an election. Zero fields take the defaults beside them.
//
// The leadership is an entry of the jinn_leader KV bucket, whose entries
// expire TTL after their last write. A candidate campaigns with a create-only
// write; the leader renews with a write that names the revision it holds.
// The revision of the winning create is the leader's token: it grows with
// every new leader, and the leader's writes to Redis carry it.
//
// A leader that cannot renew stops its duties Margin before its entry can
// expire, counting from the moment it sent its last successful renewal (the
// server stamped the entry after that moment, so it expires later). A new
// leader can only win after the entry expired, so two leaders' duties never
// run at once as long as a duty returns within Margin of its context ending
// and the clocks of the leader and NATS run at the same rate.
type LeaderConfig struct {
	// ID names the candidate in the bucket and in logs. Default: host name
	// and process id.
	ID string
	// TTL of the leadership: a dead leader is replaced at most TTL (plus
	// Poll) after its last renewal. Default 10s. The bucket's TTL wins when
	// the bucket exists with another one.
	TTL time.Duration
	// Renew is the time between two renewals. Default TTL/4.
	Renew time.Duration
	// Margin is how long before its entry can expire a leader that could not
	// renew stops its duties. Default TTL/4. Renew+Margin must be below TTL.
	Margin time.Duration
	// Poll is how often a follower tries to take over. Default TTL/5.
	Poll time.Duration
	// OnElect runs when the candidate wins, before any duty starts, with its
	// token; an error gives the leadership up. The fleet records the token in
	// Redis here (store.Lead), so that writes of older leaders are refused
	// from then on.
	OnElect func(ctx context.Context, token uint64) error
}

func (c *LeaderConfig) defaults() error {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.TTL <= 0 {
		c.TTL = DefaultLeaderTTL
	}
	if c.Renew <= 0 {
		c.Renew = c.TTL / 4
	}
	if c.Margin <= 0 {
		c.Margin = c.TTL / 4
	}
	if c.Poll <= 0 {
		c.Poll = c.TTL / 5
	}
	if c.Renew+c.Margin >= c.TTL {
		return fmt.Errorf("leader election: renew (%s) plus margin (%s) must be below the TTL (%s)", c.Renew, c.Margin, c.TTL)
	}
	return nil
}

// DefaultLeaderTTL is the TTL of the leadership unless configured.
const DefaultLeaderTTL = 10 * time.Second

// leaderKey is the one key of the jinn_leader bucket.
const leaderKey = "leader"

// leaderEntry is the value of the leader's entry, for operators reading it.
type leaderEntry struct {
	ID    string    `json:"id"`
	Since time.Time `json:"since"`
}

// Leader campaigns for the leadership and, while it holds it, runs the
// duties. Start it, then Stop it; Stop gives the leadership up at once so
// that another scheduler takes over without waiting for the TTL.
type Leader struct {
	cfg    LeaderConfig
	kv     jetstream.KeyValue
	duties []Duty
	log    hclog.Logger

	mu      sync.Mutex
	lead    Lead
	leading bool
	changed chan struct{} // closed and replaced on every change of leadership

	cancel context.CancelFunc
	done   chan struct{}
}

// NewLeader returns a candidate for the leadership of kv (the jinn_leader
// bucket, see broker.LeaderKV) that runs duties while it leads.
func NewLeader(kv jetstream.KeyValue, cfg LeaderConfig, duties []Duty, log hclog.Logger) (*Leader, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Leader{cfg: cfg, kv: kv, duties: duties, log: log.Named("leader").With("candidate", cfg.ID),
		changed: make(chan struct{}), done: make(chan struct{})}, nil
}

// ID is the candidate's id.
func (l *Leader) ID() string { return l.cfg.ID }

// Start campaigns in the background until Stop.
func (l *Leader) Start(ctx context.Context) error {
	st, err := l.kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	if ttl := st.TTL(); ttl > 0 && ttl != l.cfg.TTL {
		l.log.Warn("the leader bucket has another TTL than this scheduler's; using the bucket's", "bucket_ttl", ttl, "ttl", l.cfg.TTL)
		scale := float64(ttl) / float64(l.cfg.TTL)
		l.cfg.TTL = ttl
		l.cfg.Renew = time.Duration(float64(l.cfg.Renew) * scale)
		l.cfg.Margin = time.Duration(float64(l.cfg.Margin) * scale)
		l.cfg.Poll = time.Duration(float64(l.cfg.Poll) * scale)
	}
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go l.run(ctx)
	return nil
}

// Stop stops the duties, gives the leadership up and waits.
func (l *Leader) Stop() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	<-l.done
}

// Lead returns the leadership this candidate holds, if it leads.
func (l *Leader) Lead() (Lead, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lead, l.leading
}

// Changed returns a channel closed at the next change of leadership.
func (l *Leader) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *Leader) set(lead Lead, leading bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lead, l.leading = lead, leading
	close(l.changed)
	l.changed = make(chan struct{})
}

// run is the follower: it campaigns every Poll until it wins, then leads.
func (l *Leader) run(ctx context.Context) {
	defer close(l.done)
	t := time.NewTimer(0)
	defer t.Stop()
	var failing string // the campaign's last error, logged once
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		value, _ := json.Marshal(leaderEntry{ID: l.cfg.ID, Since: sent.UTC()})
		cctx, cancel := context.WithTimeout(ctx, l.cfg.TTL-l.cfg.Margin)
		rev, err := l.kv.Create(cctx, leaderKey, value)
		cancel()
		switch {
		case err == nil:
			failing = ""
			l.leadUntilLost(ctx, rev, sent, value)
		case errors.Is(err, jetstream.ErrKeyExists), ctx.Err() != nil:
			failing = ""
		case err.Error() != failing:
			failing = err.Error()
			l.log.Warn("campaign for leadership; will keep trying", "error", err)
		}
		t.Reset(l.cfg.Poll)
	}
}

// leadUntilLost runs the duties under token until the leadership ends: on
// Stop, when a renewal finds another revision, or when no renewal succeeded
// in time.
func (l *Leader) leadUntilLost(ctx context.Context, token uint64, sent time.Time, value []byte) {
	deadline := sent.Add(l.cfg.TTL - l.cfg.Margin)
	log := l.log.With("token", token)
	if l.cfg.OnElect != nil {
		ectx, cancel := context.WithDeadline(ctx, deadline)
		err := l.cfg.OnElect(ectx, token)
		cancel()
		if err != nil {
			log.Error("elected, but could not take over; giving the leadership up", "error", err)
			l.release(token)
			return
		}
	}
	lead := Lead{Token: token}
	dctx, stopDuties := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, d := range l.duties {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runDuty(dctx, d, lead, log)
		}()
	}
	log.Info("elected leader", "duties", len(l.duties))
	l.set(lead, true)
	stop := func(why string) {
		stopDuties()
		stopped := make(chan struct{})
		go func() { wg.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(l.cfg.Margin):
			log.Error("a duty did not stop within the margin; its Redis writes are fenced by the token", "margin", l.cfg.Margin)
			<-stopped
		}
		l.set(Lead{}, false)
		log.Info("no longer leader: "+why, "held", time.Since(sent).Round(time.Millisecond))
	}

	rev := token
	expire := time.NewTimer(time.Until(deadline))
	defer expire.Stop()
	renew := time.NewTicker(l.cfg.Renew)
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			stop("stopped")
			l.release(rev)
			return
		case <-expire.C:
			stop(fmt.Sprintf("could not renew within %s", l.cfg.TTL-l.cfg.Margin))
			return
		case <-renew.C:
			at := time.Now()
			uctx, cancel := context.WithDeadline(ctx, deadline)
			next, err := l.kv.Update(uctx, leaderKey, value, rev)
			cancel()
			switch {
			case err == nil:
				rev, deadline = next, at.Add(l.cfg.TTL-l.cfg.Margin)
				expire.Reset(time.Until(deadline))
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
				stop("another candidate holds the leadership")
				return
			case time.Now().After(deadline):
				stop(fmt.Sprintf("could not renew within %s: %v", l.cfg.TTL-l.cfg.Margin, err))
				return
			case ctx.Err() == nil:
				log.Warn("renew leadership; will retry", "error", err)
			}
		}
	}
}

// release deletes the leader's entry if it still holds it, so that a
// follower takes over at its next poll instead of after the TTL.
func (l *Leader) release(rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.kv.Delete(ctx, leaderKey, jetstream.LastRevision(rev)); err != nil {
		l.log.Debug("release leadership", "error", err)
	}
}

// runDuty ticks d at once and then every d.Interval() until ctx ends.
func runDuty(ctx context.Context, d Duty, lead Lead, log hclog.Logger) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.Tick(ctx, lead); err != nil && ctx.Err() == nil {
			log.Warn("duty failed; will try again", "duty", d.Name(), "error", err)
		}
		t.Reset(d.Interval())
	}
}
