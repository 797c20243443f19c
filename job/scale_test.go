package job

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// ago is a time d before t0.
func ago(d time.Duration) time.Time { return t0.Add(-d) }

// wk is a warm ACTIVE worker of allowance mib with reserved MiB in jobs jobs.
func wk(id string, allowance, reserved, jobs int) Worker {
	w := Worker{ID: id, Pool: "p", Allowance: allowance, Reserved: reserved, State: WorkerActive, Started: ago(time.Hour)}
	for i := 0; i < jobs; i++ {
		w.Jobs = append(w.Jobs, id+"-job")
	}
	return w
}

func cold(w Worker) Worker     { w.Started = ago(10 * time.Second); return w }
func draining(w Worker) Worker { w.State = WorkerDraining; return w }
func used(w Worker, mib int) Worker {
	w.Used = mib
	return w
}
func startedAgo(w Worker, d time.Duration) Worker { w.Started = ago(d); return w }

var testPolicy = ScalePolicy{
	Min: 1, Max: 5, High: 0.6, Low: 0.3,
	Window: time.Minute, DownWindow: 10 * time.Minute,
	UpCooldown: 2 * time.Minute, DownCooldown: 5 * time.Minute,
	WarmUp: time.Minute, Step: 1, Gap: 30 * time.Second,
}

func TestDecideScale(t *testing.T) {
	type want struct {
		action  ScaleAction
		rule    string
		desired int
		drain   string
		since   time.Time
		reason  string // a substring of the reason
	}
	cases := []struct {
		name   string
		snap   PoolSnapshot
		hist   ScaleHistory
		policy func(*ScalePolicy)
		want   want
		// what the returned history must say (zero: must be zero)
		highSince, shortSince, lowSince, lastUp, lastDown time.Time
	}{
		{
			name: "steady load in the band",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 500, 1)}, Desired: 1},
			want: want{action: ScaleHold, rule: RuleSteady, desired: 1, reason: "load 50%"},
		},
		{
			name:      "load above the high mark starts the window",
			snap:      PoolSnapshot{Workers: []Worker{wk("a", 1000, 700, 1)}, Desired: 1},
			want:      want{action: ScaleHold, rule: RuleWatch, desired: 1, reason: "for 0s of 1m0s"},
			highSince: t0,
		},
		{
			name:      "load above the high mark for part of the window",
			snap:      PoolSnapshot{Workers: []Worker{wk("a", 1000, 700, 1)}, Desired: 1},
			hist:      ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(50 * time.Second)},
			want:      want{action: ScaleHold, rule: RuleWatch, desired: 1, reason: "for 50s of 1m0s"},
			highSince: ago(50 * time.Second),
		},
		{
			name:   "load above the high mark for the whole window adds a worker (Genie's rule)",
			snap:   PoolSnapshot{Workers: []Worker{wk("a", 1000, 700, 1)}, Desired: 1},
			hist:   ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Minute)},
			want:   want{action: ScaleUp, rule: RuleHigh, desired: 2, since: ago(time.Minute), reason: "load 70% of 1000 MiB above the high mark 60% for 1m0s: 1 → 2 workers"},
			lastUp: t0,
		},
		{
			name: "load exactly at the high mark is not above it",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 600, 1)}, Desired: 1},
			hist: ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Hour)},
			want: want{action: ScaleHold, rule: RuleSteady, desired: 1},
		},
		{
			name:   "the step sets how many one scale-up adds, up to the maximum",
			snap:   PoolSnapshot{Workers: []Worker{wk("a", 1000, 700, 1), wk("b", 1000, 700, 1), wk("c", 1000, 700, 1)}, Desired: 3},
			hist:   ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(2 * time.Minute)},
			policy: func(p *ScalePolicy) { p.Step = 3 },
			want:   want{action: ScaleUp, rule: RuleHigh, desired: 5, since: ago(2 * time.Minute)},
			lastUp: t0,
		},
		{
			name: "measured use above the reservation counts",
			snap: PoolSnapshot{Workers: []Worker{used(wk("a", 1000, 300, 1), 700)}, Desired: 1},
			hist: ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Minute)},
			want: want{action: ScaleUp, rule: RuleHigh, desired: 2, since: ago(time.Minute), reason: "load 70%"}, lastUp: t0,
		},
		{
			name:      "pressure within the up cooldown holds",
			snap:      PoolSnapshot{Workers: []Worker{wk("a", 1000, 700, 1), wk("b", 1000, 700, 1)}, Desired: 2},
			hist:      ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Minute), LastUp: ago(90 * time.Second)},
			want:      want{action: ScaleHold, rule: RuleUpCooldown, desired: 2, reason: "last scale-up was 1m30s ago (cooldown 2m0s)"},
			highSince: ago(time.Minute), lastUp: ago(90 * time.Second),
		},
		{
			name: "pressure at the maximum holds",
			snap: PoolSnapshot{Workers: []Worker{
				wk("a", 1000, 700, 1), wk("b", 1000, 700, 1), wk("c", 1000, 700, 1), wk("d", 1000, 700, 1), wk("e", 1000, 700, 1),
			}, Desired: 5},
			hist:      ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Minute)},
			want:      want{action: ScaleHold, rule: RuleAtMax, desired: 5, reason: "at its maximum of 5"},
			highSince: ago(time.Minute),
		},
		{
			name:      "high load waits for starting workers",
			snap:      PoolSnapshot{Workers: []Worker{wk("a", 1000, 700, 1)}, Starting: 1, Desired: 2},
			hist:      ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(5 * time.Minute)},
			want:      want{action: ScaleHold, rule: RuleStarting, desired: 2, reason: "1 worker is starting"},
			highSince: ago(5 * time.Minute),
		},
		{
			name: "waiting jobs that fit nowhere add as many workers as they need",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 900, 1)}, Desired: 1, WaitingMemory: 1600, WaitingJobs: 2},
			hist: ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Minute), ShortSince: ago(70 * time.Second)},
			want: want{action: ScaleUp, rule: RuleWaiting, desired: 3, since: ago(70 * time.Second),
				reason: "2 waiting jobs (1600 MiB) fit in no worker's free 100 MiB for 1m10s; they need 2 more workers: 1 → 3"},
			lastUp: t0,
		},
		{
			name:       "waiting jobs start their own window even below the high mark",
			snap:       PoolSnapshot{Workers: []Worker{wk("a", 1000, 500, 1)}, Desired: 1, WaitingMemory: 800, WaitingJobs: 1},
			want:       want{action: ScaleHold, rule: RuleWatch, desired: 1, reason: "1 waiting job fit nowhere"},
			shortSince: t0,
		},
		{
			name: "free memory split across workers cannot take a large job",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 500, 1), wk("b", 1000, 500, 1)}, Desired: 2, WaitingMemory: 900, WaitingJobs: 1},
			hist: ScaleHistory{Seen: ago(10 * time.Second), ShortSince: ago(time.Minute)},
			want: want{action: ScaleUp, rule: RuleWaiting, desired: 3, since: ago(time.Minute)}, lastUp: t0,
		},
		{
			name: "waiting jobs that fit in free memory are no pressure",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 500, 1), wk("b", 1000, 500, 1)}, Desired: 2, WaitingMemory: 800, WaitingJobs: 2},
			hist: ScaleHistory{Seen: ago(10 * time.Second), ShortSince: ago(time.Hour)},
			want: want{action: ScaleHold, rule: RuleSteady, desired: 2, reason: "2 jobs waiting"},
		},
		{
			name:       "starting workers count as room for waiting jobs",
			snap:       PoolSnapshot{Workers: []Worker{wk("a", 1000, 900, 1)}, Starting: 1, Desired: 2, WaitingMemory: 1600, WaitingJobs: 2},
			hist:       ScaleHistory{Seen: ago(10 * time.Second), ShortSince: ago(time.Minute), HighSince: ago(time.Minute)},
			want:       want{action: ScaleUp, rule: RuleWaiting, desired: 3, since: ago(time.Minute), reason: "1 waiting job "},
			highSince:  time.Time{},
			shortSince: time.Time{}, lastUp: t0,
		},
		{
			name:   "an empty pool with waiting jobs grows from zero",
			snap:   PoolSnapshot{WaitingMemory: 900, WaitingJobs: 3},
			hist:   ScaleHistory{Seen: ago(10 * time.Second), ShortSince: ago(time.Minute)},
			policy: func(p *ScalePolicy) { p.Min = 0 },
			want:   want{action: ScaleUp, rule: RuleWaiting, desired: 3, since: ago(time.Minute)},
			lastUp: t0,
		},
		{
			name:   "below the minimum grows at once",
			snap:   PoolSnapshot{Desired: 0},
			policy: func(p *ScalePolicy) { p.Min = 2 },
			want:   want{action: ScaleUp, rule: RuleMin, desired: 2, reason: "0 workers, fewer than the minimum 2"},
			lastUp: t0,
		},
		{
			name: "a starting worker counts toward the minimum",
			snap: PoolSnapshot{Starting: 1, Desired: 1},
			want: want{action: ScaleHold, rule: RuleSteady, desired: 1},
		},
		{
			name: "above the maximum drains the emptiest at once",
			snap: PoolSnapshot{Workers: []Worker{
				wk("a", 1000, 700, 1), wk("b", 1000, 100, 1), wk("c", 1000, 700, 1),
			}, Desired: 3},
			policy:   func(p *ScalePolicy) { p.Max = 2 },
			want:     want{action: ScaleDown, rule: RuleMax, desired: 2, drain: "b", reason: "3 workers, more than the maximum 2: draining b"},
			lastDown: t0,
		},
		{
			name:     "low load starts the down window",
			snap:     PoolSnapshot{Workers: []Worker{wk("a", 1000, 100, 1), wk("b", 1000, 0, 0)}, Desired: 2},
			want:     want{action: ScaleHold, rule: RuleWatch, desired: 2, reason: "warm load 5% below the low mark 30% for 0s of 10m0s"},
			lowSince: t0,
		},
		{
			name: "low load for the down window drains the emptiest worker",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 100, 1), wk("b", 1000, 0, 0)}, Desired: 2},
			hist: ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(10 * time.Minute), LastUp: ago(time.Hour)},
			want: want{action: ScaleDown, rule: RuleLow, desired: 1, drain: "b", since: ago(10 * time.Minute),
				reason: "warm load 5% below the low mark 30% with nothing waiting for 10m0s: draining b (0 MiB reserved), 2 → 1 workers"},
			lastUp: ago(time.Hour), lastDown: t0,
		},
		{
			name: "a busy worker is drained when all are equally loaded; it finishes its jobs first",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 100, 1), wk("b", 1000, 100, 1)}, Desired: 2},
			hist: ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(time.Hour)},
			want: want{action: ScaleDown, rule: RuleLow, desired: 1, drain: "a", since: ago(time.Hour)}, lastDown: t0,
		},
		{
			name: "the emptiest is the least loaded, then the one with fewest jobs, then the newest",
			snap: PoolSnapshot{Workers: []Worker{
				wk("a", 1000, 0, 1), startedAgo(wk("b", 1000, 0, 0), 2*time.Hour), wk("c", 1000, 0, 0), wk("d", 1000, 200, 0),
			}, Desired: 4},
			hist: ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(time.Hour)},
			want: want{action: ScaleDown, rule: RuleLow, desired: 3, drain: "c", since: ago(time.Hour)}, lastDown: t0,
		},
		{
			name:     "waiting jobs keep an idle pool from shrinking",
			snap:     PoolSnapshot{Workers: []Worker{wk("a", 1000, 100, 1), wk("b", 1000, 0, 0)}, Desired: 2, WaitingMemory: 100, WaitingJobs: 1},
			hist:     ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(time.Hour)},
			want:     want{action: ScaleHold, rule: RuleSteady, desired: 2},
			lowSince: time.Time{},
		},
		{
			name:     "low load at the minimum holds",
			snap:     PoolSnapshot{Workers: []Worker{wk("a", 1000, 0, 0)}, Desired: 1},
			hist:     ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(time.Hour)},
			want:     want{action: ScaleHold, rule: RuleAtMin, desired: 1, reason: "at its minimum of 1"},
			lowSince: ago(time.Hour),
		},
		{
			name:     "low load with a worker starting holds",
			snap:     PoolSnapshot{Workers: []Worker{wk("a", 1000, 0, 0), wk("b", 1000, 0, 0)}, Starting: 1, Desired: 3},
			hist:     ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(time.Hour)},
			want:     want{action: ScaleHold, rule: RuleStarting, desired: 3},
			lowSince: ago(time.Hour),
		},
		{
			name:     "one drain at a time",
			snap:     PoolSnapshot{Workers: []Worker{wk("a", 1000, 0, 0), wk("b", 1000, 0, 0), draining(wk("c", 1000, 500, 1))}, Desired: 2},
			hist:     ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(time.Hour), LastDown: ago(time.Hour)},
			want:     want{action: ScaleHold, rule: RuleDraining, desired: 2, reason: "1 worker is draining"},
			lowSince: ago(time.Hour), lastDown: ago(time.Hour),
		},
		{
			name:     "low load soon after a scale-up holds (down cooldown)",
			snap:     PoolSnapshot{Workers: []Worker{wk("a", 1000, 0, 0), wk("b", 1000, 0, 0)}, Desired: 2},
			hist:     ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(10 * time.Minute), LastUp: ago(4 * time.Minute)},
			want:     want{action: ScaleHold, rule: RuleDownCooldown, desired: 2, reason: "last scaled 4m0s ago (cooldown 5m0s)"},
			lowSince: ago(10 * time.Minute), lastUp: ago(4 * time.Minute),
		},
		{
			name:     "low load soon after a scale-down holds (down cooldown)",
			snap:     PoolSnapshot{Workers: []Worker{wk("a", 1000, 0, 0), wk("b", 1000, 0, 0)}, Desired: 2},
			hist:     ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(10 * time.Minute), LastDown: ago(time.Minute)},
			want:     want{action: ScaleHold, rule: RuleDownCooldown, desired: 2},
			lowSince: ago(10 * time.Minute), lastDown: ago(time.Minute),
		},
		{
			name:     "no drain that would push the rest above the high mark",
			snap:     PoolSnapshot{Workers: []Worker{wk("big", 4000, 100, 1), wk("small", 500, 200, 1)}, Desired: 2},
			hist:     ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(time.Hour)},
			want:     want{action: ScaleHold, rule: RuleOverload, desired: 2, reason: "without big the rest would carry 300 MiB in 500 MiB"},
			lowSince: ago(time.Hour),
		},
		{
			name: "a cold worker's zero load does not make the pool look idle",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 400, 1), cold(wk("b", 1000, 0, 0))}, Desired: 2},
			hist: ScaleHistory{Seen: ago(10 * time.Second)},
			want: want{action: ScaleHold, rule: RuleSteady, desired: 2, reason: "load 20%"},
		},
		{
			name: "a pool of cold workers is never judged idle",
			snap: PoolSnapshot{Workers: []Worker{cold(wk("a", 1000, 0, 0)), cold(wk("b", 1000, 0, 0))}, Desired: 2},
			hist: ScaleHistory{Seen: ago(10 * time.Second), LowSince: ago(time.Hour)},
			want: want{action: ScaleHold, rule: RuleSteady, desired: 2, reason: "2 workers warming up"},
		},
		{
			name:      "a cold worker's zero load does dilute the load that adds workers",
			snap:      PoolSnapshot{Workers: []Worker{wk("a", 1000, 900, 1), cold(wk("b", 1000, 0, 0))}, Desired: 2},
			hist:      ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Hour)},
			want:      want{action: ScaleHold, rule: RuleSteady, desired: 2, reason: "load 45%"},
			highSince: time.Time{},
		},
		{
			name: "draining workers count in neither size nor load",
			snap: PoolSnapshot{Workers: []Worker{wk("a", 1000, 700, 1), draining(wk("b", 1000, 0, 0))}, Desired: 1},
			hist: ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Minute)},
			want: want{action: ScaleUp, rule: RuleHigh, desired: 2, since: ago(time.Minute)}, lastUp: t0,
		},
		{
			name:      "a pause longer than the gap restarts the windows",
			snap:      PoolSnapshot{Workers: []Worker{wk("a", 1000, 700, 1)}, Desired: 1},
			hist:      ScaleHistory{Seen: ago(time.Minute), HighSince: ago(5 * time.Minute)},
			want:      want{action: ScaleHold, rule: RuleWatch, desired: 1},
			highSince: t0,
		},
		{
			name:   "a desired size above a lowered maximum is clamped",
			snap:   PoolSnapshot{Workers: []Worker{wk("a", 1000, 500, 1)}, Starting: 1, Desired: 4},
			policy: func(p *ScalePolicy) { p.Max = 2 },
			want:   want{action: ScaleHold, rule: RuleSteady, desired: 2},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPolicy
			if c.policy != nil {
				c.policy(&p)
			}
			c.snap.Time = t0
			d, h := DecideScale(c.snap, c.hist, p)
			if d.Action != c.want.action || d.Rule != c.want.rule || d.Desired != c.want.desired || d.Drain != c.want.drain || !d.Since.Equal(c.want.since) {
				t.Errorf("decision %s/%s desired %d drain %q since %v (%s)\nwant      %s/%s desired %d drain %q since %v",
					d.Action, d.Rule, d.Desired, d.Drain, d.Since, d.Reason, c.want.action, c.want.rule, c.want.desired, c.want.drain, c.want.since)
			}
			if !strings.Contains(d.Reason, c.want.reason) {
				t.Errorf("reason %q\nwant it to contain %q", d.Reason, c.want.reason)
			}
			if !d.Time.Equal(t0) || !h.Seen.Equal(t0) {
				t.Errorf("decision time %v, seen %v; want %v", d.Time, h.Seen, t0)
			}
			for _, f := range []struct {
				name      string
				got, want time.Time
			}{
				{"highSince", h.HighSince, c.highSince}, {"shortSince", h.ShortSince, c.shortSince}, {"lowSince", h.LowSince, c.lowSince},
				{"lastUp", h.LastUp, c.lastUp}, {"lastDown", h.LastDown, c.lastDown},
			} {
				if !f.got.Equal(f.want) {
					t.Errorf("history %s = %v, want %v", f.name, f.got, f.want)
				}
			}
		})
	}
}

func TestDecideScaleInputs(t *testing.T) {
	s := PoolSnapshot{Time: t0, Starting: 1, WaitingMemory: 1500, WaitingJobs: 3, Workers: []Worker{
		used(wk("a", 1000, 600, 2), 650), cold(wk("b", 1000, 100, 1)), draining(wk("c", 2000, 2000, 3)),
	}}
	d, _ := DecideScale(s, ScaleHistory{}, testPolicy)
	want := ScaleInputs{Active: 2, Warm: 1, Draining: 1, Starting: 1, Allowance: 2000, Reserved: 700, Used: 650, Free: 1300,
		Load: 750.0 / 2000, WarmLoad: 0.65, WaitingMemory: 1500, WaitingJobs: 3, Unplaced: 0}
	// The 3 waiting jobs average 500 MiB: none fits in a's 400 MiB free, one
	// in b's 900, two in the starting worker (the pool's average allowance,
	// 4000/3 MiB), so all of them fit somewhere.
	if d.Inputs != want {
		t.Fatalf("inputs\n%+v\nwant\n%+v", d.Inputs, want)
	}
}

// Deciding twice on the same view asks for the same size: a repeated or
// duplicated decision does no harm.
func TestDecideScaleIsIdempotent(t *testing.T) {
	s := PoolSnapshot{Time: t0, Workers: []Worker{wk("a", 1000, 700, 1)}, Desired: 1}
	h := ScaleHistory{Seen: ago(10 * time.Second), HighSince: ago(time.Minute)}
	d1, h1 := DecideScale(s, h, testPolicy)
	d2, _ := DecideScale(s, h, testPolicy) // a second leader with the same memory
	if d1.Desired != 2 || d2.Desired != 2 {
		t.Fatalf("desired %d and %d, want 2 both times", d1.Desired, d2.Desired)
	}
	s.Desired = d1.Desired
	d3, _ := DecideScale(s, h1, testPolicy) // the next tick, before the worker came
	if d3.Action != ScaleHold || d3.Desired != 2 {
		t.Fatalf("next tick: %s desired %d (%s), want hold at 2", d3.Action, d3.Desired, d3.Reason)
	}
}

// Pressure that persists adds one worker per window and cooldown, never
// more than Max, and an idle pool gives them back one at a time.
func TestDecideScaleOverTime(t *testing.T) {
	p := testPolicy
	p.Max = 3
	var h ScaleHistory
	desired := 1
	workers := []Worker{wk("w1", 1000, 900, 1)}
	tick := 10 * time.Second
	now := t0
	var ups []time.Duration
	for i := 0; i < 100; i++ {
		now = now.Add(tick)
		d, nh := DecideScale(PoolSnapshot{Time: now, Workers: workers, Desired: desired}, h, p)
		h = nh
		if d.Action == ScaleUp {
			ups = append(ups, now.Sub(t0))
			desired = d.Desired
			// the new worker arrives at once, just as loaded
			w := wk("w"+string(rune('1'+len(workers))), 1000, 900, 1)
			w.Started = now
			workers = append(workers, w)
		}
	}
	want := []time.Duration{70 * time.Second, 190 * time.Second}
	if len(ups) != 2 || ups[0] != want[0] || ups[1] != want[1] || desired != 3 {
		t.Fatalf("scale-ups at %v (desired %d), want at %v to 3", ups, desired, want)
	}
	for i := range workers {
		workers[i].Reserved, workers[i].Jobs = 0, nil
	}
	var downs []string
	for i := 0; i < 300; i++ {
		now = now.Add(tick)
		d, nh := DecideScale(PoolSnapshot{Time: now, Workers: workers, Desired: desired}, h, p)
		h = nh
		if d.Action == ScaleDown {
			downs = append(downs, d.Drain)
			desired = d.Desired
			workers = slicesDelete(workers, d.Drain)
		}
	}
	if desired != 1 || len(downs) != 2 || downs[0] != "w3" || downs[1] != "w2" {
		t.Fatalf("drained %v (desired %d), want w3 then w2, to 1", downs, desired)
	}
}

func slicesDelete(ws []Worker, id string) []Worker {
	var out []Worker
	for _, w := range ws {
		if w.ID != id {
			out = append(out, w)
		}
	}
	return out
}

func TestScalePolicyValidate(t *testing.T) {
	for _, c := range []struct {
		p    ScalePolicy
		want string
	}{
		{ScalePolicy{Min: 1, Max: 3}, ""},
		{ScalePolicy{Min: 0, Max: 1}, ""},
		{ScalePolicy{Min: 3, Max: 2}, "raise max"},
		{ScalePolicy{Min: -1, Max: 2}, "must be 0 or more"},
		{ScalePolicy{Min: 0, Max: 0}, "at least 1"},
		{ScalePolicy{Min: 1, Max: 2, High: 0.3, Low: 0.5}, "below the high mark"},
		{ScalePolicy{Min: 1, Max: 2, High: 1.5}, "fractions"},
	} {
		err := c.p.Validate()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
}
