package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/scheduler"
)

// Short settings: the bucket's TTL is real time in JetStream.
const (
	testTTL    = time.Second
	testRenew  = 250 * time.Millisecond
	testMargin = 250 * time.Millisecond
	testPoll   = 100 * time.Millisecond
)

func testLog(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn})
}

func startNATS(t *testing.T) *server.Server {
	t.Helper()
	s, err := natsd.Start(natsd.Config{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// connect opens a connection of its own, so that closing it is a crash of
// one candidate as NATS sees it.
func connect(t *testing.T, url string) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := broker.Connect(ctx, broker.Config{URL: url, Name: t.Name()}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// partitionKV is the bucket as one candidate sees it; while cut, every write
// fails as if the network were down.
type partitionKV struct {
	jetstream.KeyValue
	cut atomic.Bool
}

var errCut = errors.New("partitioned (test)")

func (p *partitionKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if p.cut.Load() {
		return 0, errCut
	}
	return p.KeyValue.Create(ctx, key, value, opts...)
}

func (p *partitionKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if p.cut.Load() {
		<-ctx.Done() // a request that gets no answer
		return 0, errCut
	}
	return p.KeyValue.Update(ctx, key, value, rev)
}

func (p *partitionKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if p.cut.Load() {
		return errCut
	}
	return p.KeyValue.Delete(ctx, key, opts...)
}

// span is one tick of a duty under a token.
type span struct {
	token      uint64
	start, end time.Time
}

// recorder is a duty that records its ticks; each tick lasts until its
// context ends or 40ms pass, so a leader losing its lease cuts one short.
type recorder struct {
	mu    sync.Mutex
	spans []span
	ticks chan uint64
}

func newRecorder() *recorder { return &recorder{ticks: make(chan uint64, 1000)} }

func (r *recorder) Name() string            { return "recorder" }
func (r *recorder) Interval() time.Duration { return 10 * time.Millisecond }
func (r *recorder) Tick(ctx context.Context, lead scheduler.Lead) error {
	s := span{token: lead.Token, start: time.Now()}
	select {
	case <-ctx.Done():
	case <-time.After(40 * time.Millisecond):
	}
	s.end = time.Now()
	r.mu.Lock()
	r.spans = append(r.spans, s)
	r.mu.Unlock()
	select {
	case r.ticks <- lead.Token:
	default:
	}
	return nil
}

// awaitTicks returns once n ticks under token have ended.
func (r *recorder) awaitTicks(t *testing.T, token uint64, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for n > 0 {
		select {
		case tok := <-r.ticks:
			if tok == token {
				n--
			}
		case <-deadline:
			t.Fatalf("duty did not tick under token %d", token)
		}
	}
}

// check fails on two ticks of different tokens that overlap in time, and on
// tokens that do not grow from one leader to the next.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := append([]span(nil), r.spans...)
	sort.Slice(s, func(i, j int) bool { return s[i].start.Before(s[j].start) })
	for i := 1; i < len(s); i++ {
		if s[i].start.Before(s[i-1].end) {
			t.Errorf("ticks overlap: token %d %s..%s and token %d %s..%s", s[i-1].token,
				s[i-1].start.Format("15:04:05.000"), s[i-1].end.Format("15:04:05.000"),
				s[i].token, s[i].start.Format("15:04:05.000"), s[i].end.Format("15:04:05.000"))
		}
		if s[i].token < s[i-1].token {
			t.Errorf("token went back from %d to %d", s[i-1].token, s[i].token)
		}
	}
}

type candidate struct {
	*scheduler.Leader
	kv *partitionKV
	b  *broker.Broker
}

func newCandidate(t *testing.T, url, id string, duty scheduler.Duty) *candidate {
	t.Helper()
	b := connect(t, url)
	ctx := context.Background()
	kv, err := b.LeaderKV(ctx, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	pkv := &partitionKV{KeyValue: kv}
	l, err := scheduler.NewLeader(pkv, scheduler.LeaderConfig{ID: id, TTL: testTTL, Renew: testRenew, Margin: testMargin, Poll: testPoll},
		[]scheduler.Duty{duty}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return &candidate{Leader: l, kv: pkv, b: b}
}

// awaitLeader returns the candidate that leads within d, and how long it took.
func awaitLeader(t *testing.T, d time.Duration, cands ...*candidate) (*candidate, time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := time.After(d)
	for {
		chans := make([]<-chan struct{}, len(cands))
		for i, c := range cands {
			chans[i] = c.Changed()
			if _, ok := c.Lead(); ok {
				return c, time.Since(start)
			}
		}
		changed := make(chan struct{})
		stop := make(chan struct{})
		for _, ch := range chans {
			go func() {
				select {
				case <-ch:
					select {
					case changed <- struct{}{}:
					default:
					}
				case <-stop:
				}
			}()
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			close(stop)
			t.Fatalf("no leader within %s", d)
		}
		close(stop)
	}
}

func leading(c *candidate) bool { _, ok := c.Lead(); return ok }

func token(t *testing.T, c *candidate) uint64 {
	t.Helper()
	l, ok := c.Lead()
	if !ok {
		t.Fatalf("%s does not lead", c.ID())
	}
	return l.Token
}

// Two candidates on one bucket: one leads; partitioned, it stops its duties
// before the other takes over; healed, it does not take the leadership back;
// crashed, the other takes over within the TTL; stopped, at once. No two
// ticks of the duty ever overlap.
func TestLeaderFailoverNoOverlap(t *testing.T) {
	ns := startNATS(t)
	rec := newRecorder()
	a := newCandidate(t, ns.ClientURL(), "a", rec)
	b := newCandidate(t, ns.ClientURL(), "b", rec)

	first, _ := awaitLeader(t, 5*time.Second, a, b)
	other := map[*candidate]*candidate{a: b, b: a}[first]
	tok1 := token(t, first)
	rec.awaitTicks(t, tok1, 3)
	if leading(other) {
		t.Fatal("two leaders")
	}

	// Partition the leader: its renewals get no answer.
	first.kv.cut.Store(true)
	cutAt := time.Now()
	second, took := awaitLeader(t, 5*time.Second, other)
	if took > testTTL+testPoll+500*time.Millisecond {
		t.Errorf("takeover after a partition took %s; want about the TTL (%s)", took, testTTL)
	}
	if leading(first) {
		t.Fatal("the partitioned leader still leads")
	}
	tok2 := token(t, second)
	if tok2 <= tok1 {
		t.Fatalf("new token %d not above the old %d", tok2, tok1)
	}
	t.Logf("partition: takeover %s after the cut", time.Since(cutAt).Round(time.Millisecond))
	rec.awaitTicks(t, tok2, 3)

	// Healed, the old leader stays a follower.
	first.kv.cut.Store(false)
	rec.awaitTicks(t, tok2, 10) // ≥ 4 polls of the follower
	if leading(first) {
		t.Fatal("the healed candidate took the leadership while the leader renews")
	}

	// Crash the leader: its connection closes, no release.
	second.b.NC.Close()
	crashAt := time.Now()
	third, took := awaitLeader(t, 5*time.Second, first)
	if took > testTTL+testPoll+500*time.Millisecond {
		t.Errorf("takeover after a crash took %s; want within the TTL (%s) and a poll", took, testTTL)
	}
	t.Logf("crash: takeover %s after", time.Since(crashAt).Round(time.Millisecond))
	tok3 := token(t, third)
	if tok3 <= tok2 {
		t.Fatalf("new token %d not above the old %d", tok3, tok2)
	}
	rec.awaitTicks(t, tok3, 3)

	// A clean stop hands over at once.
	c := newCandidate(t, ns.ClientURL(), "c", rec)
	rec.awaitTicks(t, tok3, 3)
	if leading(c) {
		t.Fatal("a new candidate took over from a live leader")
	}
	third.Stop()
	_, took = awaitLeader(t, 5*time.Second, c)
	if took > testTTL/2 {
		t.Errorf("handover after a clean stop took %s; want a poll (%s), not the TTL", took, testPoll)
	}
	rec.awaitTicks(t, token(t, c), 3)
	rec.check(t)
}

// OnElect runs before any duty, and an error there gives the leadership up.
func TestLeaderOnElect(t *testing.T) {
	ns := startNATS(t)
	b := connect(t, ns.ClientURL())
	kv, err := b.LeaderKV(context.Background(), testTTL)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	var calls atomic.Int32
	l, err := scheduler.NewLeader(kv, scheduler.LeaderConfig{ID: "x", TTL: testTTL, Renew: testRenew, Margin: testMargin, Poll: testPoll,
		OnElect: func(_ context.Context, token uint64) error {
			if calls.Add(1) == 1 {
				return fmt.Errorf("refused token %d (test)", token)
			}
			return nil
		}}, []scheduler.Duty{rec}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	c := &candidate{Leader: l}
	awaitLeader(t, 5*time.Second, c)
	if n := calls.Load(); n != 2 {
		t.Fatalf("OnElect ran %d times; want 2 (refused, then accepted)", n)
	}
	rec.awaitTicks(t, token(t, c), 1)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.spans {
		if s.token != token(t, c) {
			t.Fatalf("a duty ran under the refused token %d", s.token)
		}
	}
}

func TestLeaderConfig(t *testing.T) {
	_, err := scheduler.NewLeader(nil, scheduler.LeaderConfig{TTL: time.Second, Renew: 600 * time.Millisecond, Margin: 400 * time.Millisecond}, nil, hclog.NewNullLogger())
	if err == nil {
		t.Fatal("renew + margin = TTL accepted")
	}
}
