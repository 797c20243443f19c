package loadtest

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Markers around the part of docs/performance.md a bench run writes; the
// text outside them (the analysis) is kept.
const (
	benchBegin = "<!-- bench:begin (written by `make bench`; edit outside these markers) -->"
	benchEnd   = "<!-- bench:end -->"
)

// Targets of the suite, on a 2-core machine (issue 6).
const (
	TargetThroughput = 0.7 // × the fork/exec floor
	TargetIntake     = 0.5 // × the HTTP→JetStream floor
	TargetP50        = 2 * time.Millisecond
	TargetP99        = 20 * time.Millisecond
	TargetIntakeP99  = 10 * time.Millisecond
	TargetTick       = 50 * time.Millisecond // over 10,000 workers
	TargetWorkerRSS  = 30 << 20
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteMarkdown writes the run's tables; plots names the plot files
// relative to the markdown (empty: none).
func (r *BenchReport) WriteMarkdown(w io.Writer, plots string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	host, _ := os.Hostname()
	p("Run of %s on %s: **%d cores, %d MiB memory**, load average at the start %s; the suite took %s. ",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), host, r.Cores, r.MemoryMiB, r.Load, r.Elapsed.Round(time.Second))
	p("Concurrency of the trivial-job runs: %d.\n\n", r.Concurrency)
	p("| # | figure | jinn | floor | ratio | target | |\n|---|---|---|---|---|---|---|\n")
	thr := ratio(r.Jinn.PerSec, r.Floor.PerSec)
	p("| 1 | trivial jobs end to end (`true`: HTTP submit → run → final) | %.0f jobs/s | %.0f jobs/s (mkdir, 2 files, fork/exec, wait) | %.2f | ≥ %.1f | %s |\n",
		r.Jinn.PerSec, r.Floor.PerSec, thr, TargetThroughput, verdict(thr >= TargetThroughput))
	if r.JinnRedis.PerSec > 0 {
		rr := ratio(r.JinnRedis.PerSec, r.Floor.PerSec)
		p("| 1 | the same on redis-server instead of the embedded Redis | %.0f jobs/s | %.0f jobs/s | %.2f | ≥ %.1f | %s |\n",
			r.JinnRedis.PerSec, r.Floor.PerSec, rr, TargetThroughput, verdict(rr >= TargetThroughput))
	}
	for _, l := range r.Levels {
		target, ok := "", ""
		if l.Fraction == 0.5 {
			target = fmt.Sprintf("p50 ≤ %s, p99 ≤ %s", ms(TargetP50), ms(TargetP99))
			ok = verdict(l.Started.P50 <= TargetP50 && l.Started.P99 <= TargetP99)
		}
		p("| 2 | submit→running at %.0f%% of max (%.0f jobs/s, open loop, n=%d): p50 / p99 / p99.9 | %s / %s / %s | | | %s | %s |\n",
			l.Fraction*100, l.Rate, l.Started.N, ms(l.Started.P50), ms(l.Started.P99), ms(l.Started.P999), target, ok)
	}
	in := ratio(r.Intake.PerSec, r.IntakeFloor.PerSec)
	p("| 3 | intake: accepted submits over HTTP (%d clients) | %.0f/s, p50 %s, p99 %s | %.0f/s, p50 %s, p99 %s | %.2f | ≥ %.1f, p99 ≤ %s | %s |\n",
		intakeClients, r.Intake.PerSec, ms(r.Intake.Latency.P50), ms(r.Intake.Latency.P99),
		r.IntakeFloor.PerSec, ms(r.IntakeFloor.Latency.P50), ms(r.IntakeFloor.Latency.P99), in, TargetIntake, ms(TargetIntakeP99),
		verdict(in >= TargetIntake && r.Intake.Latency.P99 <= TargetIntakeP99))
	if r.IntakeRedis.N > 0 {
		ir := ratio(r.IntakeRedis.PerSec, r.IntakeFloor.PerSec)
		p("| 3 | the same on redis-server instead of the embedded Redis | %.0f/s, p50 %s, p99 %s | %.0f/s | %.2f | ≥ %.1f, p99 ≤ %s | %s |\n",
			r.IntakeRedis.PerSec, ms(r.IntakeRedis.Latency.P50), ms(r.IntakeRedis.Latency.P99), r.IntakeFloor.PerSec, ir, TargetIntake, ms(TargetIntakeP99),
			verdict(ir >= TargetIntake && r.IntakeRedis.Latency.P99 <= TargetIntakeP99))
	}
	p("| 4 | producers onto `jinn.submit` (%d, one publish at a time each) | %.0f/s (client.Publisher), p99 %s | %.0f/s (raw JetStream publish), p99 %s | %.2f | | |\n",
		intakeClients, r.Publisher.PerSec, ms(r.Publisher.Latency.P99), r.RawPublish.PerSec, ms(r.RawPublish.Latency.P99), ratio(r.Publisher.PerSec, r.RawPublish.PerSec))
	for _, s := range r.Scale {
		target, ok := "", ""
		if s.Workers >= 10000 {
			target, ok = "tick ≤ 50 ms", verdict(s.Autoscale+s.Reap <= TargetTick)
		}
		p("| 5 | %d simulated workers: autoscaler + reaper tick (median, slowest of %d) | %s + %s (slowest %s + %s) | | | %s | %s |\n",
			s.Workers, s.Ticks, ms(s.Autoscale), ms(s.Reap), ms(s.AutoscaleMx), ms(s.ReapMx), target, ok)
		p("| 5 | %d simulated workers: heartbeats into Redis; Redis memory; allocated per tick | %.0f heartbeats/s (%.0f Redis ops/s); %s; %s | | | | |\n",
			s.Workers, s.HeartbeatsPerSec, s.RedisOpsPerSec, mib(s.RedisMemory), mib(int64(s.AllocPerTick)))
	}
	if f := r.Footprint; f.WorkerRSS > 0 {
		p("| 6 | RSS of an idle `jinn worker` (anonymous: heap and stacks / file: pages of the binary) | %s (%s / %s) | | | ≤ 30 MiB | %s |\n",
			mib(f.WorkerRSS), mib(f.WorkerAnon), mib(f.WorkerFile), verdict(f.WorkerRSS <= TargetWorkerRSS))
		p("| 6 | RSS of an idle `jinn up` (NATS, Redis, scheduler, intake, one worker) | %s | | | | |\n", mib(f.UpRSS))
		p("| 6 | `jinn up` RSS per running job (%d `sleep` jobs; the jobs' own processes not counted) | %s | | | | |\n", f.Running, mib(f.PerJob))
	}
	if len(r.Jinn.Phases) > 0 {
		p("\nWhere a trivial job's time goes in run 1 (p50 / p99 over its jobs; a job holds its slot from its claim to its ack):\n\n| phase | p50 | p99 |\n|---|---|---|\n")
		p("| client: submit → final status seen | %s | %s |\n", ms(r.Jinn.PerJob.P50), ms(r.Jinn.PerJob.P99))
		for _, ph := range r.Jinn.Phases {
			p("| %s | %s | %s |\n", ph.Name, ms(ph.Time.P50), ms(ph.Time.P99))
		}
	}
	p("\nScale simulation on %s. Latency is measured from each job's intended send time to the RUNNING time its worker recorded, so a late send counts against jinn.\n", r.ScaleRedis)
	for _, n := range r.Notes {
		p("\n%s\n", n)
	}
	if plots != "" {
		p("\n![throughput over time](%s/throughput.png)\n\n![submit→running latency](%s/latency.png)\n", plots, plots)
	}
}

// WriteFiles writes the tables into md between the bench markers (keeping
// the rest of the file, or starting one) and the plots into plotDir.
func (r *BenchReport) WriteFiles(md, plotDir string) error {
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		return err
	}
	if err := r.plotThroughput(filepath.Join(plotDir, "throughput.png")); err != nil {
		return fmt.Errorf("throughput plot: %w", err)
	}
	if err := r.plotLatency(filepath.Join(plotDir, "latency.png")); err != nil {
		return fmt.Errorf("latency plot: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(md), plotDir)
	if err != nil {
		rel = plotDir
	}
	var body bytes.Buffer
	r.WriteMarkdown(&body, filepath.ToSlash(rel))
	old, err := os.ReadFile(md)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	generated := benchBegin + "\n" + body.String() + benchEnd
	b, rest, found := strings.Cut(text, benchBegin)
	if _, after, ok := strings.Cut(rest, benchEnd); found && ok {
		text = b + generated + after
	} else {
		text = "# Performance\n\n" + generated + "\n" + text
	}
	return os.WriteFile(md, []byte(text), 0o644)
}

func (r *BenchReport) plotThroughput(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Trivial jobs finished over time (concurrency %d)", r.Concurrency)
	p.X.Label.Text = "seconds since the run's start"
	p.Y.Label.Text = "jobs finished"
	p.Add(plotter.NewGrid())
	for _, s := range []struct {
		name string
		t    Throughput
		c    color.Color
	}{{"jinn", r.Jinn, color.RGBA{R: 200, A: 255}}, {"fork/exec floor", r.Floor, color.RGBA{B: 200, A: 255}}} {
		done := append([]time.Duration(nil), s.t.Done...)
		slices.Sort(done)
		xys := make(plotter.XYs, len(done))
		for i, d := range done {
			xys[i] = plotter.XY{X: d.Seconds(), Y: float64(i + 1)}
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color, l.Width = s.c, vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%.0f/s)", s.name, s.t.PerSec), l)
	}
	p.Legend.Top, p.Legend.Left = false, false
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

func (r *BenchReport) plotLatency(path string) error {
	p := plot.New()
	p.Title.Text = "Submit→running latency, open loop"
	p.X.Label.Text = "percentile (in nines: 0.3 = p50, 1 = p90, 2 = p99, 3 = p99.9; max at 3.5)"
	p.Y.Label.Text = "ms (log scale)"
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, msTicks{}
	p.Add(plotter.NewGrid())
	colors := []color.Color{color.RGBA{G: 150, A: 255}, color.RGBA{B: 200, A: 255}, color.RGBA{R: 200, A: 255}}
	for i, l := range r.Levels {
		if len(l.samples) == 0 {
			continue
		}
		var xys plotter.XYs
		for _, q := range []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1} {
			k := min(len(l.samples)-1, max(0, int(q*float64(len(l.samples))+0.999999)-1))
			nines := 3.5
			if q < 1 {
				nines = -math.Log10(1 - q)
			}
			xys = append(xys, plotter.XY{X: nines, Y: max(float64(l.samples[k])/float64(time.Millisecond), 0.01)})
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		line.Color, line.Width = colors[i%len(colors)], vg.Points(1.5)
		pts, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		pts.Color = line.Color
		p.Add(line, pts)
		p.Legend.Add(fmt.Sprintf("%.0f%% of max (%.0f/s)", l.Fraction*100, l.Rate), line)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

// msTicks marks 1, 2, 5 of each power of ten on a log axis of milliseconds.
type msTicks struct{}

func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for p := math.Pow(10, math.Floor(math.Log10(lo))); p <= hi; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := p * m; v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return out
}
