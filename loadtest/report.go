package loadtest

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// WriteTable prints a run's final table.
func (r *Result) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("submitted", r.Submitted)
	row("accepted", r.Accepted)
	if r.Rejected > 0 {
		row("rejected", fmt.Sprintf("%d (last: %v)", r.Rejected, r.LastReject))
	} else {
		row("rejected", 0)
	}
	row("succeeded", r.ByStatus[job.Succeeded])
	row("failed", r.Failed)
	row("lost", r.Lost)
	row("retried (more than one attempt)", r.Retried)
	row("overlapping attempts", r.Overlaps)
	row("elapsed", r.Elapsed.Round(time.Millisecond))
	row("throughput (succeeded/s)", fmt.Sprintf("%.1f", r.Throughput))
	row("submit→running p50/p90/p99/p99.9/max", r.StartLatency)
	row("accept p50/p90/p99/p99.9/max", r.AcceptLatency)
	tw.Flush()
	if len(r.LostIDs) > 0 {
		n := min(len(r.LostIDs), 10)
		fmt.Fprintf(w, "lost jobs (first %d): %s\n", n, strings.Join(r.LostIDs[:n], " "))
	}
}

func (p Percentiles) String() string {
	if p.N == 0 {
		return "-"
	}
	r := func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("%s / %s / %s / %s / %s (n=%d)", r(p.P50), r(p.P90), r(p.P99), r(p.P999), r(p.Max), p.N)
}
