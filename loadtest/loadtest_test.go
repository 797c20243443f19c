package loadtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
)

func TestParseShape(t *testing.T) {
	good := map[string]Shape{
		"true":                  {Kind: "true"},
		"sleep:100ms":           {Kind: "sleep", Dist: "fixed", Min: 100 * time.Millisecond},
		"sleep:uniform:10ms:1s": {Kind: "sleep", Dist: "uniform", Min: 10 * time.Millisecond, Max: time.Second},
		"sleep:exp:200ms":       {Kind: "sleep", Dist: "exp", Min: 200 * time.Millisecond},
		"memhog:64:1s":          {Kind: "memhog", MemMiB: 64, Hold: time.Second},
	}
	for in, want := range good {
		got, err := ParseShape(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "false", "sleep", "sleep:x", "sleep:uniform:1s:10ms", "memhog:0:1s", "memhog:10", "sleep:-1s"} {
		if _, err := ParseShape(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// The verifier sees overlapping attempts, by their times or by the lock.
func TestVerifierFindsOverlapsAndLostJobs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ok", "1 w1 100 start\n1 w1 200 end\n")
	write("retried", "1 w1 100 start\n2 w2 300 start\n2 w2 400 end\n") // attempt 1 died with its worker
	write("overlapped", "1 w1 100 start\n2 w2 150 start\n1 w1 200 end\n2 w2 250 end\n")
	write("locked", "1 w1 100 start\n2 w2 300 start\n2 w2 400 end\n")
	write("overlaps", "locked 2 w2\n")
	write("claimed", "1 w1 100 start\n") // SUCCEEDED in jinn, never finished: lost
	r := &runner{cfg: Config{SinkDir: dir}}
	for _, id := range []string{"ok", "retried", "overlapped", "locked", "claimed", "never"} {
		r.jobs = append(r.jobs, submitted{id: id, intended: time.Unix(0, 50)})
	}
	finals := map[string]job.Job{}
	for _, id := range []string{"ok", "retried", "overlapped", "locked", "claimed"} {
		finals[id] = job.Job{ID: id, Status: job.Succeeded}
	}
	res := r.verify(finals)
	if res.Overlaps != 2 || res.Lost != 2 || res.Retried != 3 || res.OK() {
		t.Fatalf("result %+v", res)
	}
	if strings.Join(res.LostIDs, ",") != "claimed,never" {
		t.Fatalf("lost %v", res.LostIDs)
	}
	if res.StartLatency.N != 5 || res.StartLatency.Max != 50*time.Nanosecond {
		t.Fatalf("latency %+v", res.StartLatency)
	}
}

func TestPercentiles(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i))
	}
	p := percentiles(s)
	if p.P50 != 500 || p.P90 != 900 || p.P99 != 990 || p.P999 != 999 || p.Max != 1000 {
		t.Fatalf("%+v", p)
	}
}

// A small run against a real fleet keeps the promises, over HTTP and NATS.
func TestRunAgainstFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, err := fleet.Up(ctx, fleet.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1",
		Workers: 2, Allowance: 2048, AckWait: 3 * time.Second, Heartbeat: 200 * time.Millisecond,
		Log: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	for _, c := range []struct {
		name, via string
		rate      float64
	}{{"http closed loop", "http", 0}, {"nats closed loop", "nats", 0}, {"http open loop", "http", 100}} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Run(ctx, Config{
				Server: f.URL, NATS: f.NATSURL, Via: c.via, Rate: c.rate, Concurrency: 8, Jobs: 60,
				Shape:   Shape{Kind: "sleep", Dist: "uniform", Max: 20 * time.Millisecond},
				SinkDir: t.TempDir(), Settle: 30 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			var table strings.Builder
			res.WriteTable(&table)
			if !res.OK() || res.Accepted != 60 || res.ByStatus[job.Succeeded] != 60 || res.StartLatency.N != 60 {
				t.Fatalf("run:\n%s", table.String())
			}
		})
	}
}
