package loadtest

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// run is one attempt as its job recorded it.
type run struct {
	attempt    int
	worker     string
	start, end time.Time // end is zero when the attempt never finished
}

type attempts []run

// parseAttempts reads lines "<attempt> <worker> <unix ns> start|end".
func parseAttempts(lines [][]string) attempts {
	byAttempt := map[int]*run{}
	for _, f := range lines {
		if len(f) != 4 {
			continue
		}
		n, err1 := strconv.Atoi(f[0])
		ns, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		r := byAttempt[n]
		if r == nil {
			r = &run{attempt: n, worker: f[1]}
			byAttempt[n] = r
		}
		switch f[3] {
		case "start":
			r.start = time.Unix(0, ns)
		case "end":
			r.end = time.Unix(0, ns)
		}
	}
	out := make(attempts, 0, len(byAttempt))
	for _, r := range byAttempt {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b run) int { return a.start.Compare(b.start) })
	return out
}

func (a attempts) started() attempts {
	return slices.DeleteFunc(slices.Clone(a), func(r run) bool { return r.start.IsZero() })
}

func (a attempts) completed() bool {
	return slices.ContainsFunc(a, func(r run) bool { return !r.start.IsZero() && !r.end.IsZero() })
}

func (a attempts) firstStart() (time.Time, bool) {
	s := a.started()
	if len(s) == 0 {
		return time.Time{}, false
	}
	return s[0].start, true
}

// overlap reports whether an attempt started before an earlier one ended.
// An attempt that never recorded its end died with its worker: the lock
// check (the overlaps file) is what catches it if it ran on regardless.
func (a attempts) overlap() bool {
	s := a.started()
	for i := 1; i < len(s); i++ {
		prev := s[i-1]
		if !prev.end.IsZero() && s[i].start.Before(prev.end) {
			return true
		}
	}
	return false
}

func readLines(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, strings.Fields(sc.Text()))
	}
	return out
}

// Percentiles of a latency distribution.
type Percentiles struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
}

// percentiles computes exact percentiles (nearest rank) of samples.
func percentiles(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Percentiles{N: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: s[len(s)-1]}
}
