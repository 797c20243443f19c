package loadtest

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/jinn-fleet/jinn/job"
)

// WriteSummary prints the run's outcome.
func (r *AutoscaleReport) WriteSummary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("jobs submitted", r.Submitted)
	row("succeeded", r.ByStatus[job.Succeeded])
	row("not succeeded (lost, failed, killed, unfinished)", r.Lost())
	row("retried (more than one attempt)", r.Retried)
	row("workers at most / at the end", fmt.Sprintf("%d / %d", r.MaxActive, r.FinalActive))
	row("scale-ups / drains", fmt.Sprintf("%d / %d", len(r.ScaleUps), len(r.Drained)))
	row("jobs on drained workers (not succeeded)", fmt.Sprintf("%d (%d)", r.JobsOnDrained, r.DrainedFailed))
	for i, u := range r.ScaleUps {
		row(fmt.Sprintf("scale-up %d: pressure → decision / worker up / first job", i+1),
			fmt.Sprintf("%s / %s / %s (%s)", secs(u.ToDecision), secs(u.ToWorker), secs(u.ToFirstJob), u.Decision.Rule))
	}
	row("elapsed", r.Elapsed.Round(time.Second))
	tw.Flush()
}

func secs(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// Write puts the report into dir: autoscale.png (the plot), samples.csv and
// report.md.
func (r *AutoscaleReport) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := r.writePlot(filepath.Join(dir, "autoscale.png")); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := r.writeCSV(filepath.Join(dir, "samples.csv")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644)
}

func (r *AutoscaleReport) writeCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"seconds", "active", "starting", "draining", "desired", "load", "allowance_mib", "reserved_mib", "waiting_mib", "waiting_jobs", "submitted"})
	for _, s := range r.Samples {
		_ = w.Write([]string{fmt.Sprintf("%.1f", s.At.Seconds()), strconv.Itoa(s.Active), strconv.Itoa(s.Starting), strconv.Itoa(s.Draining),
			strconv.Itoa(s.Desired), fmt.Sprintf("%.3f", s.Load), strconv.Itoa(s.Allowance), strconv.Itoa(s.Reserved),
			strconv.Itoa(s.WaitingMemory), strconv.Itoa(s.WaitingJobs), strconv.Itoa(s.Submitted)})
	}
	w.Flush()
	return w.Error()
}

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	green  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	red    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	grey   = color.RGBA{R: 127, G: 127, B: 127, A: 255}
)

// writePlot draws three panels over time: the pool's size, its load against
// the marks, and the memory waiting; scale-ups and drains are marked.
func (r *AutoscaleReport) writePlot(path string) error {
	series := func(v func(PoolSample) float64) plotter.XYs {
		xys := make(plotter.XYs, len(r.Samples))
		for i, s := range r.Samples {
			xys[i].X, xys[i].Y = s.At.Seconds(), v(s)
		}
		return xys
	}
	line := func(p *plot.Plot, name string, xys plotter.XYs, c color.Color, dashed bool) error {
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color, l.Width = c, vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	end := r.Elapsed.Seconds()
	flat := func(y float64) plotter.XYs { return plotter.XYs{{X: 0, Y: y}, {X: end, Y: y}} }
	marks := func(p *plot.Plot, y float64) error {
		var ups, downs plotter.XYs
		for _, d := range r.Decisions {
			x := d.Time.Sub(r.Start).Seconds()
			if x < 0 {
				continue
			}
			switch d.Action {
			case job.ScaleUp:
				ups = append(ups, plotter.XY{X: x, Y: y})
			case job.ScaleDown:
				downs = append(downs, plotter.XY{X: x, Y: y})
			}
		}
		for _, m := range []struct {
			name  string
			xys   plotter.XYs
			shape draw.GlyphDrawer
			c     color.Color
		}{{"scale-up", ups, draw.TriangleGlyph{}, green}, {"drain", downs, draw.BoxGlyph{}, red}} {
			if len(m.xys) == 0 {
				continue
			}
			s, err := plotter.NewScatter(m.xys)
			if err != nil {
				return err
			}
			s.Shape, s.Color, s.Radius = m.shape, m.c, vg.Points(4)
			p.Add(s)
			p.Legend.Add(m.name, s)
		}
		return nil
	}
	newPlot := func(title, ylabel string) *plot.Plot {
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		p.X.Label.Text = "seconds since the load began"
		p.X.Min, p.X.Max = 0, end
		p.Legend.Top, p.Legend.Left = true, false
		p.Add(plotter.NewGrid())
		return p
	}
	pol := r.Config.Policy.WithDefaults()

	size := newPlot("Pool size", "workers")
	if err := line(size, "active", series(func(s PoolSample) float64 { return float64(s.Active) }), blue, false); err != nil {
		return err
	}
	if err := line(size, "desired", series(func(s PoolSample) float64 { return float64(s.Desired) }), orange, true); err != nil {
		return err
	}
	if err := line(size, "draining", series(func(s PoolSample) float64 { return float64(s.Draining) }), red, false); err != nil {
		return err
	}
	size.Y.Min, size.Y.Max = 0, float64(pol.Max)+1
	if err := marks(size, float64(pol.Max)+0.5); err != nil {
		return err
	}

	load := newPlot("Used / allowance of the active workers", "percent")
	if err := line(load, "used/allowance", series(func(s PoolSample) float64 { return s.Load * 100 }), blue, false); err != nil {
		return err
	}
	if err := line(load, fmt.Sprintf("high mark %.0f%%", pol.High*100), flat(pol.High*100), grey, true); err != nil {
		return err
	}
	if err := line(load, fmt.Sprintf("low mark %.0f%%", pol.Low*100), flat(pol.Low*100), grey, true); err != nil {
		return err
	}
	load.Y.Min, load.Y.Max = 0, 110

	wait := newPlot("Memory of the jobs waiting for the pool", "MiB")
	if err := line(wait, "waiting", series(func(s PoolSample) float64 { return float64(s.WaitingMemory) }), orange, false); err != nil {
		return err
	}
	if err := line(wait, "reserved by running jobs", series(func(s PoolSample) float64 { return float64(s.Reserved) }), blue, false); err != nil {
		return err
	}
	if err := line(wait, "allowance of the active workers", series(func(s PoolSample) float64 { return float64(s.Allowance) }), green, true); err != nil {
		return err
	}
	wait.Y.Min = 0

	const w, h = 9 * vg.Inch, 10 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	plots := [][]*plot.Plot{{size}, {load}, {wait}}
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(12), PadY: vg.Points(16)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *AutoscaleReport) markdown() string {
	var b strings.Builder
	c := r.Config
	pol := c.Policy.WithDefaults()
	fmt.Fprintf(&b, "# Autoscale scenario: report\n\n")
	fmt.Fprintf(&b, "`jinn loadtest --scenario autoscale`, run %s on this machine (%d cores).\n\n", r.Start.UTC().Format("2006-01-02 15:04 MST"), numCPU())
	fmt.Fprintf(&b, "Workers of %d MiB each; jobs ask for %d MiB and hold %d MiB for %s; the rate climbs to %.2f jobs/s over %s, stays %s, then stops.\n",
		c.Allowance, c.JobMemory, c.Touch, c.Hold, c.Peak, c.Ramp, c.Steady)
	fmt.Fprintf(&b, "Policy: min %d, max %d; up above %.0f%% (or waiting jobs that fit nowhere) for %s, cooldown %s, step %d; down below %.0f%% for %s, cooldown %s; warm-up %s; a decision every %s.\n\n",
		pol.Min, pol.Max, pol.High*100, pol.Window, pol.UpCooldown, pol.Step, pol.Low*100, pol.DownWindow, pol.DownCooldown, pol.WarmUp, c.Interval)
	fmt.Fprintf(&b, "![pool size, used/allowance and waiting memory over time](autoscale.png)\n\n")
	fmt.Fprintf(&b, "## Outcome\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| jobs submitted | %d |\n| succeeded | %d |\n| lost, failed, killed or unfinished | %d |\n| retried | %d |\n", r.Submitted, r.ByStatus[job.Succeeded], r.Lost(), r.Retried)
	fmt.Fprintf(&b, "| workers at most / at the end | %d / %d |\n| scale-ups / drains | %d / %d |\n", r.MaxActive, r.FinalActive, len(r.ScaleUps), len(r.Drained))
	fmt.Fprintf(&b, "| jobs that ran on a worker later drained | %d, of which %d did not succeed |\n| elapsed | %s |\n\n", r.JobsOnDrained, r.DrainedFailed, r.Elapsed.Round(time.Second))
	if len(r.ScaleUps) > 0 {
		fmt.Fprintf(&b, "## From sustained pressure to the new worker pulling\n\n")
		fmt.Fprintf(&b, "Times since the pressure began (the first tick that saw it).\n\n| scale-up | rule | → decision | → worker up | → its first job running |\n|---|---|---|---|---|\n")
		for i, u := range r.ScaleUps {
			fmt.Fprintf(&b, "| %d (%d → %d) | %s | %s | %s | %s |\n", i+1, u.Decision.Size, u.Decision.Desired, u.Decision.Rule, secs(u.ToDecision), secs(u.ToWorker), secs(u.ToFirstJob))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "## Decisions\n\nThose that changed the size, or whose rule changed.\n\n| t (s) | decision | size → desired | load | waiting | reason |\n|---|---|---|---|---|---|\n")
	for _, d := range r.Decisions {
		reason := d.Reason
		if d.Error != "" {
			reason += " (error: " + d.Error + ")"
		}
		fmt.Fprintf(&b, "| %.1f | %s/%s | %d → %d | %.0f%% | %d MiB | %s |\n", d.Time.Sub(r.Start).Seconds(), d.Action, d.Rule, d.Size, d.Desired,
			d.Inputs.Load*100, d.Inputs.WaitingMemory, strings.ReplaceAll(reason, "|", "/"))
	}
	return b.String()
}

func numCPU() int { return runtime.NumCPU() }
