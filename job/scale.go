package job

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ScalePolicy says when the autoscaler grows or shrinks a pool. Zero fields
// take the defaults beside them (see WithDefaults); Min and Max are taken as
// given.
type ScalePolicy struct {
	// Min is the fewest workers the pool keeps; 0 lets it empty when idle.
	Min int `json:"min"`
	// Max is the most workers it may have; below Min it counts as Min.
	Max int `json:"max"`
	// High is the load (used / allowance) above which the pool is under
	// pressure, Genie's 60%. Default 0.6.
	High float64 `json:"high"`
	// Low is the load below which the pool is idle enough to shrink.
	// Default 0.3.
	Low float64 `json:"low"`
	// Window is how long pressure (load above High, or waiting jobs that do
	// not fit) must last before the pool grows. Default 1m.
	Window time.Duration `json:"window"`
	// DownWindow is how long the load must stay below Low, with nothing
	// waiting, before the pool shrinks. Default 10m.
	DownWindow time.Duration `json:"downWindow"`
	// UpCooldown is the least time between two scale-ups. Default 2m.
	UpCooldown time.Duration `json:"upCooldown"`
	// DownCooldown is the least time between any scaling and a scale-down.
	// Default 5m.
	DownCooldown time.Duration `json:"downCooldown"`
	// WarmUp is how long a new worker is cold: its load does not count
	// toward an idle pool until then, so that a worker just added cannot
	// make the pool look idle. Default 1m.
	WarmUp time.Duration `json:"warmUp"`
	// Step is how many workers one scale-up adds. Waiting jobs that fit
	// nowhere may add more, as many as they need, up to Max. Default 1.
	Step int `json:"step"`
	// Gap is the longest pause between two observations that keeps a window
	// running; after a longer one (a new leader, an outage) windows start
	// over, since nobody saw what happened meanwhile. Default 30s.
	Gap time.Duration `json:"gap"`
}

// WithDefaults returns the policy with its zero fields set to their defaults.
func (p ScalePolicy) WithDefaults() ScalePolicy {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if p.High <= 0 {
		p.High = 0.6
	}
	if p.Low <= 0 {
		p.Low = 0.3
	}
	def(&p.Window, time.Minute)
	def(&p.DownWindow, 10*time.Minute)
	def(&p.UpCooldown, 2*time.Minute)
	def(&p.DownCooldown, 5*time.Minute)
	def(&p.WarmUp, time.Minute)
	def(&p.Gap, 30*time.Second)
	if p.Step <= 0 {
		p.Step = 1
	}
	if p.Min < 0 {
		p.Min = 0
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	return p
}

// Validate reports a policy that cannot work, saying which setting to change.
func (p ScalePolicy) Validate() error {
	var errs []error
	if p.Min < 0 {
		errs = append(errs, fmt.Errorf("min workers %d: must be 0 or more", p.Min))
	}
	if p.Max < p.Min {
		errs = append(errs, fmt.Errorf("max workers %d is below min workers %d: raise max", p.Max, p.Min))
	}
	if p.Max < 1 {
		errs = append(errs, fmt.Errorf("max workers %d: must be at least 1", p.Max))
	}
	if p.High < 0 || p.High > 1 || p.Low < 0 || p.Low >= 1 {
		errs = append(errs, fmt.Errorf("high %.2f and low %.2f marks must be fractions of the allowance, in (0, 1]", p.High, p.Low))
	}
	if d := p.WithDefaults(); d.Low >= d.High {
		errs = append(errs, fmt.Errorf("low mark %.2f must be below the high mark %.2f, or the pool would flap", d.Low, d.High))
	}
	return errors.Join(errs...)
}

// PoolSnapshot is what the autoscaler sees of one pool at one tick.
type PoolSnapshot struct {
	Time time.Time
	// Workers are the pool's live workers (those with a heartbeat), in any
	// state. A worker the autoscaler asked to drain counts as DRAINING even
	// before its heartbeat says so.
	Workers []Worker
	// Starting is how many workers the provider has started that have not
	// sent a heartbeat yet.
	Starting int
	// Desired is the size in force: the last decision's, or the current size
	// when none was made yet.
	Desired int
	// WaitingMemory (MiB) and WaitingJobs are the jobs QUEUED for the
	// clusters the pool serves.
	WaitingMemory int
	WaitingJobs   int
}

// ScaleHistory is what the autoscaler remembers of a pool between ticks:
// when each condition began and when it last scaled. It is kept with the
// pool's record, so a new leader carries on where the last one stopped.
type ScaleHistory struct {
	Seen       time.Time `json:"seen,omitzero"`       // the last tick
	HighSince  time.Time `json:"highSince,omitzero"`  // load above High since
	ShortSince time.Time `json:"shortSince,omitzero"` // waiting jobs fit nowhere since
	LowSince   time.Time `json:"lowSince,omitzero"`   // warm load below Low, nothing waiting, since
	LastUp     time.Time `json:"lastUp,omitzero"`
	LastDown   time.Time `json:"lastDown,omitzero"`
}

// ScaleInputs are the numbers a decision was made from.
type ScaleInputs struct {
	Active   int `json:"active"`   // ACTIVE workers
	Warm     int `json:"warm"`     // of them, past their warm-up
	Draining int `json:"draining"` // DRAINING workers (leaving; not counted)
	Starting int `json:"starting"` // started, no heartbeat yet
	// Allowance, Reserved, Used and Free are MiB summed over the active
	// workers; Used is what they measured.
	Allowance int `json:"allowance"`
	Reserved  int `json:"reserved"`
	Used      int `json:"used"`
	Free      int `json:"free"`
	// Load is the active workers' max(reserved, used) / allowance; WarmLoad
	// the same over warm workers only, which is what "idle" is judged on.
	Load          float64 `json:"load"`
	WarmLoad      float64 `json:"warmLoad"`
	WaitingMemory int     `json:"waitingMemory"` // MiB
	WaitingJobs   int     `json:"waitingJobs"`
	// Unplaced is how many waiting jobs (of their average size) fit in no
	// active or starting worker's free allowance.
	Unplaced int `json:"unplaced"`
}

// ScaleAction is what a decision does.
type ScaleAction string

const (
	ScaleUp   ScaleAction = "up"   // raise the desired size
	ScaleDown ScaleAction = "down" // drain one worker, then remove it
	ScaleHold ScaleAction = "hold" // change nothing
)

// The rules a decision can come from; ScaleDecision.Rule names one.
const (
	RuleMin          = "min"            // below the minimum: grow at once
	RuleMax          = "max"            // above the maximum: drain at once
	RuleHigh         = "high"           // load above the high mark for the window
	RuleWaiting      = "waiting"        // waiting jobs fit nowhere for the window
	RuleLow          = "low"            // idle for the down window
	RuleWatch        = "watch"          // a condition holds, its window is not full yet
	RuleSteady       = "steady"         // nothing to do
	RuleAtMax        = "at-max"         // would grow, but the pool is at its maximum
	RuleAtMin        = "at-min"         // would shrink, but the pool is at its minimum
	RuleUpCooldown   = "up-cooldown"    // would grow, but scaled up too recently
	RuleDownCooldown = "down-cooldown"  // would shrink, but scaled too recently
	RuleStarting     = "starting"       // would shrink, but workers are starting
	RuleDraining     = "draining"       // would shrink, but a drain is under way
	RuleOverload     = "would-overload" // would shrink, but the rest would pass the high mark
)

// ScaleDecision is the autoscaler's answer for one pool at one tick.
type ScaleDecision struct {
	Time   time.Time   `json:"time"`
	Action ScaleAction `json:"action"`
	Rule   string      `json:"rule"`
	Reason string      `json:"reason"`
	// Size is the active and starting workers when it was decided.
	Size int `json:"size"`
	// Desired is the size asked for: absolute, so that repeating a decision
	// (a retry, a second leader) asks for nothing more.
	Desired int `json:"desired"`
	// Drain is the worker to drain and then remove (Action down).
	Drain string `json:"drain,omitempty"`
	// Since is when the condition behind an up or down decision began.
	Since  time.Time   `json:"since,omitzero"`
	Inputs ScaleInputs `json:"inputs"`
	// Error is set when carrying the decision out failed; the next tick
	// tries again.
	Error string `json:"error,omitempty"`
}

// DecideScale decides the size of one pool from what the autoscaler sees now
// (s), what it remembers (h) and the policy (p). It is pure: it returns the
// decision and the history to remember, and the caller carries them out.
//
// In order: below Min it grows to Min, above Max it drains one worker, both at
// once. It grows by Step (or, when waiting jobs fit nowhere, by as many workers
// as they need) when the load has stayed above High, or waiting jobs have fit
// nowhere, for the whole Window, unless it is at Max or within UpCooldown of
// the last scale-up. It drains the emptiest active worker when the warm load
// has stayed below Low with nothing waiting for the whole DownWindow, unless it
// is at Min, a worker is starting or draining, it scaled within DownCooldown,
// or the remaining workers would carry the load above High. After it scales,
// every window starts over.
func DecideScale(s PoolSnapshot, h ScaleHistory, p ScalePolicy) (ScaleDecision, ScaleHistory) {
	p = p.WithDefaults()
	now := s.Time
	in, per := scaleInputs(s, p)
	if !h.Seen.IsZero() && now.Sub(h.Seen) > p.Gap {
		h.HighSince, h.ShortSince, h.LowSince = time.Time{}, time.Time{}, time.Time{}
	}
	h.Seen = now
	high := in.Active > 0 && in.Load > p.High
	short := in.Unplaced > 0
	low := in.Warm > 0 && in.WarmLoad < p.Low && in.WaitingJobs == 0
	h.HighSince = since(h.HighSince, high, now)
	h.ShortSince = since(h.ShortSince, short, now)
	h.LowSince = since(h.LowSince, low, now)

	size := in.Active + in.Starting
	d := ScaleDecision{Time: now, Action: ScaleHold, Size: size, Desired: min(max(s.Desired, p.Min), p.Max), Inputs: in}
	hold := func(rule, reason string, args ...any) (ScaleDecision, ScaleHistory) {
		d.Rule, d.Reason = rule, fmt.Sprintf(reason, args...)
		return d, h
	}
	scaled := func() {
		h.HighSince, h.ShortSince, h.LowSince = time.Time{}, time.Time{}, time.Time{}
	}
	up := func(rule string, desired int, from time.Time, reason string, args ...any) (ScaleDecision, ScaleHistory) {
		d.Action, d.Rule, d.Desired, d.Since = ScaleUp, rule, desired, from
		d.Reason = fmt.Sprintf(reason, args...)
		h.LastUp = now
		scaled()
		return d, h
	}
	down := func(rule string, victim Worker, from time.Time, reason string, args ...any) (ScaleDecision, ScaleHistory) {
		d.Action, d.Rule, d.Desired, d.Drain, d.Since = ScaleDown, rule, size-1, victim.ID, from
		d.Reason = fmt.Sprintf(reason, args...)
		h.LastDown = now
		scaled()
		return d, h
	}

	// Bounds come first and wait for no window.
	if size < p.Min {
		return up(RuleMin, p.Min, time.Time{}, "%d workers, fewer than the minimum %d", size, p.Min)
	}
	if size > p.Max && in.Active > 0 {
		v := emptiest(s.Workers)
		return down(RuleMax, v, time.Time{}, "%d workers, more than the maximum %d: draining %s (%d MiB reserved)", size, p.Max, v.ID, v.Reserved)
	}

	highFull := !h.HighSince.IsZero() && now.Sub(h.HighSince) >= p.Window
	shortFull := !h.ShortSince.IsZero() && now.Sub(h.ShortSince) >= p.Window
	if highFull || shortFull {
		var why []string
		add, rule, from := 0, RuleHigh, now
		if highFull {
			add, from = p.Step, h.HighSince
			why = append(why, fmt.Sprintf("load %s of %d MiB above the high mark %s for %s", pct(in.Load), in.Allowance, pct(p.High), now.Sub(h.HighSince).Round(time.Second)))
		}
		if shortFull {
			need := ceilDiv(in.Unplaced, per)
			add, rule = max(add, p.Step, need), RuleWaiting
			from = earliest(from, h.ShortSince)
			why = append(why, fmt.Sprintf("%s (%d MiB) fit in no worker's free %d MiB for %s; they need %s", count(in.Unplaced, "waiting job"), in.WaitingMemory, in.Free, now.Sub(h.ShortSince).Round(time.Second), count(need, "more worker")))
		}
		reason := strings.Join(why, "; ")
		switch {
		case !shortFull && in.Starting > 0:
			// The load of the workers starting is not seen yet; waiting jobs
			// already count them (see Unplaced).
			return hold(RuleStarting, "%s, but %s starting", reason, count(in.Starting, "worker is", "workers are"))
		case size >= p.Max:
			return hold(RuleAtMax, "%s, but the pool is at its maximum of %d", reason, p.Max)
		case !h.LastUp.IsZero() && now.Sub(h.LastUp) < p.UpCooldown:
			return hold(RuleUpCooldown, "%s, but the last scale-up was %s ago (cooldown %s)", reason, now.Sub(h.LastUp).Round(time.Second), p.UpCooldown)
		}
		desired := min(size+add, p.Max)
		return up(rule, desired, from, "%s: %d → %d workers", reason, size, desired)
	}

	if !h.LowSince.IsZero() && now.Sub(h.LowSince) >= p.DownWindow {
		reason := fmt.Sprintf("warm load %s below the low mark %s with nothing waiting for %s", pct(in.WarmLoad), pct(p.Low), now.Sub(h.LowSince).Round(time.Second))
		last := later(h.LastUp, h.LastDown)
		switch {
		case size <= p.Min:
			return hold(RuleAtMin, "%s, but the pool is at its minimum of %d", reason, p.Min)
		case in.Starting > 0:
			return hold(RuleStarting, "%s, but %s starting", reason, count(in.Starting, "worker is", "workers are"))
		case in.Draining > 0:
			return hold(RuleDraining, "%s, but %s draining", reason, count(in.Draining, "worker is", "workers are"))
		case !last.IsZero() && now.Sub(last) < p.DownCooldown:
			return hold(RuleDownCooldown, "%s, but the pool last scaled %s ago (cooldown %s)", reason, now.Sub(last).Round(time.Second), p.DownCooldown)
		}
		v := emptiest(s.Workers)
		rest := in.Allowance - v.Allowance
		load := int(in.Load*float64(in.Allowance) + 0.5)
		if load > 0 && (rest <= 0 || float64(load)/float64(rest) >= p.High) {
			return hold(RuleOverload, "%s, but without %s the rest would carry %d MiB in %d MiB, above the high mark %s", reason, v.ID, load, rest, pct(p.High))
		}
		return down(RuleLow, v, h.LowSince, "%s: draining %s (%d MiB reserved), %d → %d workers", reason, v.ID, v.Reserved, size, size-1)
	}

	switch {
	case !h.HighSince.IsZero():
		return hold(RuleWatch, "load %s above the high mark %s for %s of %s", pct(in.Load), pct(p.High), now.Sub(h.HighSince).Round(time.Second), p.Window)
	case !h.ShortSince.IsZero():
		return hold(RuleWatch, "%s fit nowhere for %s of %s", count(in.Unplaced, "waiting job"), now.Sub(h.ShortSince).Round(time.Second), p.Window)
	case !h.LowSince.IsZero():
		return hold(RuleWatch, "warm load %s below the low mark %s for %s of %s", pct(in.WarmLoad), pct(p.Low), now.Sub(h.LowSince).Round(time.Second), p.DownWindow)
	}
	if in.Active > 0 && in.Warm == 0 {
		return hold(RuleSteady, "load %s; %s warming up", pct(in.Load), count(in.Active, "worker"))
	}
	return hold(RuleSteady, "load %s, %s waiting", pct(in.Load), count(in.WaitingJobs, "job"))
}

// scaleInputs sums up a snapshot. per is how many waiting jobs of the
// average waiting size one more worker would take (at least 1).
func scaleInputs(s PoolSnapshot, p ScalePolicy) (in ScaleInputs, per int) {
	in.Starting = s.Starting
	in.WaitingMemory, in.WaitingJobs = max(s.WaitingMemory, 0), max(s.WaitingJobs, 0)
	var load, warmLoad, warmAllowance, allowanceAll, counted int
	for _, w := range s.Workers {
		allowanceAll += w.Allowance
		counted++
		if w.State == WorkerDraining {
			in.Draining++
			continue
		}
		in.Active++
		in.Allowance += w.Allowance
		in.Reserved += w.Reserved
		in.Used += w.Used
		in.Free += max(w.Free(), 0)
		l := max(w.Reserved, w.Used)
		load += l
		if s.Time.Sub(w.Started) >= p.WarmUp {
			in.Warm++
			warmLoad += l
			warmAllowance += w.Allowance
		}
	}
	in.Load = ratio(load, in.Allowance)
	in.WarmLoad = ratio(warmLoad, warmAllowance)
	per = 1
	if in.WaitingJobs == 0 {
		return in, per
	}
	avg := max(ceilDiv(in.WaitingMemory, in.WaitingJobs), 1)
	if counted > 0 {
		per = max(allowanceAll/counted/avg, 1)
	}
	fit := in.Starting * per
	for _, w := range s.Workers {
		if w.State != WorkerDraining {
			fit += max(w.Free(), 0) / avg
		}
	}
	in.Unplaced = max(in.WaitingJobs-fit, 0)
	return in, per
}

// emptiest is the active worker to drain: the least loaded, then the one
// with the fewest jobs, then the newest (it has warmed the fewest caches).
func emptiest(ws []Worker) Worker {
	// A loop, not a filtered copy: over 10,000 workers the copy took 17 ms
	// of a leader's tick (docs/performance.md).
	best := -1
	for i := range ws {
		a := &ws[i]
		if a.State == WorkerDraining {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := &ws[best]
		if cmp.Or(
			cmp.Compare(max(a.Reserved, a.Used), max(b.Reserved, b.Used)),
			cmp.Compare(len(a.Jobs), len(b.Jobs)),
			b.Started.Compare(a.Started),
			strings.Compare(a.ID, b.ID),
		) < 0 {
			best = i
		}
	}
	if best < 0 {
		return Worker{}
	}
	return ws[best]
}

// since keeps the start of a condition's run: set when it begins, cleared
// when it stops.
func since(start time.Time, holds bool, now time.Time) time.Time {
	switch {
	case !holds:
		return time.Time{}
	case start.IsZero():
		return now
	}
	return start
}

func ratio(a, b int) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func ceilDiv(a, b int) int {
	if b <= 0 || a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func pct(f float64) string { return fmt.Sprintf("%.0f%%", f*100) }

// count is "1 job" or "2 jobs"; with a plural form, "1 worker is" or
// "2 workers are".
func count(n int, one string, many ...string) string {
	if n == 1 {
		return "1 " + one
	}
	if len(many) > 0 {
		return fmt.Sprintf("%d %s", n, many[0])
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// Pool is the autoscaler's record of one worker pool: what it saw at its
// last tick, the size it wants, and the decisions that brought it there.
type Pool struct {
	Name     string      `json:"name"`
	Provider string      `json:"provider,omitempty"` // local, aws, exec
	Clusters []string    `json:"clusters,omitempty"` // whose waiting jobs count
	Policy   ScalePolicy `json:"policy"`
	Size     int         `json:"size"`     // ACTIVE workers with a heartbeat
	Starting int         `json:"starting"` // started, no heartbeat yet
	Desired  int         `json:"desired"`
	// Draining are the workers the autoscaler asked to drain; each is
	// removed from the provider once it has exited.
	Draining []string `json:"draining,omitempty"`
	// Last is the decision of the last tick, whatever it was.
	Last    *ScaleDecision `json:"last,omitempty"`
	History ScaleHistory   `json:"history"`
	// Decisions are the recent decisions that changed something or whose
	// rule changed, newest first.
	Decisions []ScaleDecision `json:"decisions,omitempty"`
	Updated   time.Time       `json:"updated"`
}
