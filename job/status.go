package job

import "fmt"

// Status is where a job stands in its lifecycle.
type Status string

// The lifecycle: ACCEPTED → QUEUED → CLAIMED → INIT → RUNNING → a terminal status.
const (
	Accepted  Status = "ACCEPTED"  // recorded, not yet resolved
	Queued    Status = "QUEUED"    // resolved and published to its cluster
	Claimed   Status = "CLAIMED"   // a worker admitted it
	Init      Status = "INIT"      // its directory and files are being prepared
	Running   Status = "RUNNING"   // its process runs
	Succeeded Status = "SUCCEEDED" // exit code 0
	Failed    Status = "FAILED"    // non-zero exit, or it could not start
	Killed    Status = "KILLED"    // killed on request
	TimedOut  Status = "TIMED_OUT" // ran past its timeout
	Lost      Status = "LOST"      // its worker died and its retries are spent
	Invalid   Status = "INVALID"   // bad request, or nothing can run it
)

// Statuses lists every status in lifecycle order.
var Statuses = []Status{Accepted, Queued, Claimed, Init, Running, Succeeded, Failed, Killed, TimedOut, Lost, Invalid}

// Terminal reports whether s is final. Terminal statuses never change.
func (s Status) Terminal() bool {
	switch s {
	case Succeeded, Failed, Killed, TimedOut, Lost, Invalid:
		return true
	}
	return false
}

// Active reports whether a worker owns the job (CLAIMED, INIT or RUNNING).
func (s Status) Active() bool { return s == Claimed || s == Init || s == Running }

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// ParseStatus turns user input (any case) into a Status.
func ParseStatus(s string) (Status, error) {
	st := Status(upper(s))
	if !st.Valid() {
		return "", fmt.Errorf("unknown status %q (one of %v)", s, Statuses)
	}
	return st, nil
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// transitions lists, for each non-terminal status, the statuses it may move to.
// An active job may go back to CLAIMED: that is a new attempt after its worker died.
var transitions = map[Status][]Status{
	Accepted: {Queued, Invalid, Killed, Failed},
	Queued:   {Claimed, Killed, Lost, Invalid},
	Claimed:  {Claimed, Init, Running, Failed, Killed, TimedOut, Lost},
	Init:     {Claimed, Running, Failed, Killed, TimedOut, Lost},
	Running:  {Claimed, Succeeded, Failed, Killed, TimedOut, Lost},
}

// CanTransition reports whether a job in status from may move to status to.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Sources returns the statuses from which a job may move to to. The store's
// atomic scripts take this list so that the rule lives here and only here.
func Sources(to Status) []Status {
	var out []Status
	for _, from := range Statuses {
		if CanTransition(from, to) {
			out = append(out, from)
		}
	}
	return out
}
