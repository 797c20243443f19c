package job

import (
	"slices"
	"strings"
	"testing"
)

// allowed is the lifecycle written out by hand, independently of the
// transitions table: a change to one without the other fails the test.
var allowed = map[[2]Status]bool{
	{Accepted, Queued}:   true,
	{Accepted, Invalid}:  true,
	{Accepted, Killed}:   true,
	{Accepted, Failed}:   true,
	{Queued, Claimed}:    true,
	{Queued, Killed}:     true,
	{Queued, Lost}:       true,
	{Queued, Invalid}:    true,
	{Claimed, Claimed}:   true, // a new attempt after the worker died
	{Claimed, Init}:      true,
	{Claimed, Running}:   true,
	{Claimed, Failed}:    true,
	{Claimed, Killed}:    true,
	{Claimed, TimedOut}:  true,
	{Claimed, Lost}:      true,
	{Init, Claimed}:      true,
	{Init, Running}:      true,
	{Init, Failed}:       true,
	{Init, Killed}:       true,
	{Init, TimedOut}:     true,
	{Init, Lost}:         true,
	{Running, Claimed}:   true,
	{Running, Succeeded}: true,
	{Running, Failed}:    true,
	{Running, Killed}:    true,
	{Running, TimedOut}:  true,
	{Running, Lost}:      true,
}

func TestCanTransitionEveryPair(t *testing.T) {
	if len(Statuses) != 11 {
		t.Fatalf("Statuses has %d entries, want 11: update this test's table", len(Statuses))
	}
	n := 0
	for _, from := range Statuses {
		for _, to := range Statuses {
			want := allowed[[2]Status{from, to}]
			if want {
				n++
			}
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	if n != len(allowed) {
		t.Errorf("table names %d pairs but only %d are of known statuses", len(allowed), n)
	}
}

func TestCanTransitionUnknownStatus(t *testing.T) {
	for _, s := range Statuses {
		for _, bad := range []Status{"", "BOGUS", "queued", "Running"} {
			if CanTransition(bad, s) {
				t.Errorf("CanTransition(%q, %s) = true, want false", bad, s)
			}
			if CanTransition(s, bad) {
				t.Errorf("CanTransition(%s, %q) = true, want false", s, bad)
			}
		}
	}
}

func TestTerminalHasNoOutgoingTransitions(t *testing.T) {
	terminal := []Status{Succeeded, Failed, Killed, TimedOut, Lost, Invalid}
	for _, s := range Statuses {
		want := slices.Contains(terminal, s)
		if got := s.Terminal(); got != want {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, want)
		}
		if !s.Terminal() {
			continue
		}
		for _, to := range Statuses {
			if CanTransition(s, to) {
				t.Errorf("terminal %s may move to %s", s, to)
			}
		}
	}
	// And every non-terminal status can reach some terminal one directly.
	for _, s := range Statuses {
		if s.Terminal() {
			continue
		}
		if !slices.ContainsFunc(terminal, func(to Status) bool { return CanTransition(s, to) }) {
			t.Errorf("non-terminal %s cannot end", s)
		}
	}
}

func TestActive(t *testing.T) {
	for _, s := range Statuses {
		want := s == Claimed || s == Init || s == Running
		if got := s.Active(); got != want {
			t.Errorf("%s.Active() = %v, want %v", s, got, want)
		}
		if s.Active() && s.Terminal() {
			t.Errorf("%s is both active and terminal", s)
		}
	}
}

func TestValid(t *testing.T) {
	for _, s := range Statuses {
		if !s.Valid() {
			t.Errorf("%s.Valid() = false", s)
		}
	}
	for _, s := range []Status{"", "running", "DONE", "RUNNING ", "TIMEDOUT"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true", s)
		}
	}
}

func TestSourcesConsistentWithCanTransition(t *testing.T) {
	for _, to := range Statuses {
		src := Sources(to)
		for _, from := range Statuses {
			if got, want := slices.Contains(src, from), CanTransition(from, to); got != want {
				t.Errorf("Sources(%s) contains %s = %v, CanTransition = %v", to, from, got, want)
			}
		}
		// In lifecycle order and without repeats: the store passes it to a script.
		for i := 1; i < len(src); i++ {
			if slices.Index(Statuses, src[i-1]) >= slices.Index(Statuses, src[i]) {
				t.Errorf("Sources(%s) = %v: not in lifecycle order", to, src)
			}
		}
	}
	// A few spelled out, so that a consistent but wrong rule still fails.
	cases := map[Status][]Status{
		Accepted:  nil, // nothing moves back to ACCEPTED
		Queued:    {Accepted},
		Claimed:   {Queued, Claimed, Init, Running},
		Init:      {Claimed},
		Running:   {Claimed, Init},
		Succeeded: {Running},
		Lost:      {Queued, Claimed, Init, Running},
		Invalid:   {Accepted, Queued},
		Killed:    {Accepted, Queued, Claimed, Init, Running},
		TimedOut:  {Claimed, Init, Running},
		Failed:    {Accepted, Claimed, Init, Running},
	}
	for to, want := range cases {
		if got := Sources(to); !slices.Equal(got, want) {
			t.Errorf("Sources(%s) = %v, want %v", to, got, want)
		}
	}
	if got := Sources("BOGUS"); len(got) != 0 {
		t.Errorf("Sources(BOGUS) = %v, want none", got)
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in      string
		want    Status
		wantErr bool
	}{
		{"ACCEPTED", Accepted, false},
		{"queued", Queued, false},
		{"Claimed", Claimed, false},
		{"init", Init, false},
		{"rUnNiNg", Running, false},
		{"succeeded", Succeeded, false},
		{"FAILED", Failed, false},
		{"killed", Killed, false},
		{"timed_out", TimedOut, false},
		{"Timed_Out", TimedOut, false},
		{"lost", Lost, false},
		{"invalid", Invalid, false},
		{"", "", true},
		{"timed-out", "", true},
		{"timedout", "", true},
		{" running", "", true},
		{"running\n", "", true},
		{"DONE", "", true},
		{"ſucceeded", "", true}, // a non-ASCII letter that upper-cases to S in Unicode
		{"RUNNINGG", "", true},
	}
	for _, tt := range tests {
		got, err := ParseStatus(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseStatus(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseStatus(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "RUNNING") {
			t.Errorf("ParseStatus(%q) error %q does not list the known statuses", tt.in, err)
		}
	}
	for _, s := range Statuses {
		for _, in := range []string{string(s), strings.ToLower(string(s))} {
			if got, err := ParseStatus(in); err != nil || got != s {
				t.Errorf("ParseStatus(%q) = %q, %v; want %s", in, got, err, s)
			}
		}
	}
}
