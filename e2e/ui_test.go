package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jinn-fleet/jinn/job"
)

// The web UI in headless Chromium: a job submitted from the UI shows up and
// runs in the jobs list, its page follows its output while it runs and
// turns SUCCEEDED; a long job is killed from its page; the filters and
// pages of the list work. With JINN_SCREENSHOTS=1 it writes the jobs and
// workers pages to docs/img for the README.
func TestUIJobs(t *testing.T) {
	s := start(t, withWorkers(2))
	ctx := browser(t)
	gate := filepath.Join(t.TempDir(), "gate")

	// Finished jobs for the list, the filters and the paging.
	etl := job.Request{ID: "nightly-etl", Name: "nightly-etl", User: "alice", Tags: []string{"etl", "nightly"},
		Command: []string{"type:bash"}, Args: []string{"echo extracted 1200 rows"}}
	report := job.Request{ID: "weekly-report", Name: "weekly-report", User: "bob", Tags: []string{"report"},
		Command: []string{"type:bash"}, Args: []string{"echo building; exit 3"}}
	for _, r := range []job.Request{etl, report} {
		s.wait(s.submit(r).ID, 20*time.Second)
	}

	// Submit from the UI a job that prints, then waits for the gate.
	script := fmt.Sprintf("echo hello from the UI; while [ ! -e %s ]; do sleep 0.05; done; echo finished", gate)
	run(t, ctx, "submit from the UI",
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#jobs tr[data-id="weekly-report"]`)),
		chromedp.Click(chromedp.CSS(`#new-job summary`)),
		chromedp.SetValue(chromedp.CSS(`#submit-form [name=id]`), "ui-hello"),
		chromedp.SetValue(chromedp.CSS(`#submit-form [name=name]`), "hello"),
		chromedp.SetValue(chromedp.CSS(`#submit-form [name=user]`), "carol"),
		chromedp.SetValue(chromedp.CSS(`#submit-form [name=args]`), script),
		chromedp.Click(chromedp.CSS(`#submit-form button[type=submit]`)),
	)
	waitText(t, ctx, "#submit-result", "ui-hello")
	// The list shows it run, moved by the status events (no reload).
	waitText(t, ctx, `#jobs tr[data-id="ui-hello"] .st`, "RUNNING")

	// Its page follows stdout while it runs, then shows it SUCCEEDED.
	follow(t, ctx, "open the job page", `#jobs tr[data-id="ui-hello"] a`)
	waitText(t, ctx, "#status", "RUNNING")
	waitText(t, ctx, "#stdout", "hello from the UI")
	if j, _ := s.Store.Get(context.Background(), "ui-hello"); j == nil || j.Status != job.Running {
		t.Fatalf("the output showed before the job ended, yet the job is %+v", j)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#status", "SUCCEEDED")
	waitText(t, ctx, "#stdout", "finished")
	for _, st := range []job.Status{job.Accepted, job.Queued, job.Claimed, job.Running, job.Succeeded} {
		waitText(t, ctx, "#history", string(st))
	}
	waitText(t, ctx, "#files", "stdout")
	waitText(t, ctx, "#request", `"user": "carol"`)
	waitHidden(t, ctx, "#kill")
	screenshot(t, ctx, "job.png")

	// A long job, holding memory on its worker while it runs.
	long := job.Request{ID: "long-sleep", Name: "long-sleep", User: "dave", Memory: 1536,
		Command: []string{"type:bash"}, Args: []string{"sleep 300"}}
	s.submit(long)
	s.waitStatus(long.ID, job.Running, 20*time.Second)
	run(t, ctx, "workers page",
		chromedp.Navigate(s.URL+"/workers"),
		chromedp.WaitVisible(chromedp.CSS(`#workers tr[data-id="local-2"]`)),
	)
	waitText(t, ctx, "#workers", "1536 reserved")
	waitTrue(t, ctx, "a memory bar shows the reservation",
		`() => [...document.querySelectorAll('.membar .reserved')].some((e) => parseFloat(e.style.width) > 30)`)
	screenshot(t, ctx, "workers.png")

	// Kill it from its page.
	run(t, ctx, "kill from the job page",
		chromedp.Navigate(s.URL+"/jobs/long-sleep"),
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
	)
	waitText(t, ctx, "#status", "RUNNING")
	run(t, ctx, "click kill", chromedp.Click(chromedp.CSS("#kill")))
	waitText(t, ctx, "#status", "KILLED")
	if j := s.wait(long.ID, 10*time.Second); j.Status != job.Killed {
		t.Fatalf("killed from the UI: %+v", j)
	}

	// The list for the README: one job running, the others finished.
	train := job.Request{ID: "train-model", Name: "train-model", User: "erin", Memory: 1024, Tags: []string{"ml"},
		Command: []string{"type:bash"}, Args: []string{"sleep 300"}}
	s.submit(train)
	s.waitStatus(train.ID, job.Running, 20*time.Second)
	run(t, ctx, "jobs page", chromedp.Navigate(s.URL+"/"))
	waitText(t, ctx, `#jobs tr[data-id="train-model"] .st`, "RUNNING")
	waitText(t, ctx, `#jobs tr[data-id="long-sleep"] .st`, "KILLED")
	screenshot(t, ctx, "jobs.png")
	s.do("DELETE", "/api/v1/jobs/"+train.ID, nil, nil)

	// Filters: by tag, by user and status.
	run(t, ctx, "filter by tag", chromedp.Navigate(s.URL+"/?tag=etl"))
	waitText(t, ctx, "#jobs tbody", "nightly-etl")
	waitRows(t, ctx, 1)
	run(t, ctx, "filter by user and status", chromedp.Navigate(s.URL+"/?user=bob&status=FAILED"))
	waitText(t, ctx, "#jobs tbody", "weekly-report")
	waitRows(t, ctx, 1)

	// Paging, two jobs a page: five jobs make three pages, newest first.
	run(t, ctx, "first page", chromedp.Navigate(s.URL+"/?limit=2"))
	waitText(t, ctx, "#jobs tbody", "train-model")
	waitRows(t, ctx, 2)
	follow(t, ctx, "next page", "#next")
	waitText(t, ctx, "#jobs tbody", "ui-hello")
	waitRows(t, ctx, 2)
	follow(t, ctx, "last page", "#next")
	waitText(t, ctx, "#jobs tbody", "nightly-etl")
	waitRows(t, ctx, 1)
	waitHidden(t, ctx, "#next")
	follow(t, ctx, "previous page", "#prev")
	waitText(t, ctx, "#jobs tbody", "ui-hello")
}

// The operators' pages: a cluster taken OUT_OF_SERVICE and a command
// deprecated from the UI, as the API then shows them, and a pool's size
// over time with its decisions.
func TestUIOperators(t *testing.T) {
	s := start(t)
	ctx := browser(t)
	if code := s.do("PUT", "/api/v1/clusters/bonus", job.Cluster{Tags: []string{"sched:bonus"}, Description: "spare capacity"}, nil); code != http.StatusCreated {
		t.Fatalf("put cluster: %d", code)
	}

	run(t, ctx, "take a cluster out of service",
		chromedp.Navigate(s.URL+"/clusters"),
		chromedp.WaitVisible(chromedp.CSS(`#entities tr[data-name="bonus"]`)),
		chromedp.SetValue(chromedp.CSS(`#entities tr[data-name="bonus"] select`), "OUT_OF_SERVICE"),
		chromedp.Click(chromedp.CSS(`#entities tr[data-name="bonus"] button`)),
	)
	waitText(t, ctx, `#entities tr[data-name="bonus"] .st`, "OUT_OF_SERVICE")
	waitText(t, ctx, "#notice", "bonus is now OUT_OF_SERVICE")
	var c job.Cluster
	if s.do("GET", "/api/v1/clusters/bonus", nil, &c); c.Status != job.ClusterOutOfService {
		t.Fatalf("the API shows %+v", c)
	}
	waitText(t, ctx, `#entities tr[data-name="local"] .st`, "UP")

	run(t, ctx, "deprecate a command",
		chromedp.Navigate(s.URL+"/commands"),
		chromedp.WaitVisible(chromedp.CSS(`#entities tr[data-name="exec"]`)),
		chromedp.SetValue(chromedp.CSS(`#entities tr[data-name="exec"] select`), "DEPRECATED"),
		chromedp.Click(chromedp.CSS(`#entities tr[data-name="exec"] button`)),
	)
	waitText(t, ctx, `#entities tr[data-name="exec"] .st`, "DEPRECATED")
	var cmd job.Command
	if s.do("GET", "/api/v1/commands/exec", nil, &cmd); cmd.Status != job.CommandDeprecated {
		t.Fatalf("the API shows %+v", cmd)
	}

	// A pool as the autoscaler records it: it grew from 1 to 3 and shrank to 2.
	token := uint64(0)
	if v, err := s.Conn.Redis.Get(context.Background(), "jinn:leader:token").Result(); err == nil {
		token, _ = strconv.ParseUint(v, 10, 64)
	}
	t0 := time.Now().Add(-20 * time.Minute).UTC()
	p := &job.Pool{Name: "batch", Provider: "local", Clusters: []string{"local"},
		Policy: job.ScalePolicy{Min: 1, Max: 4, High: 0.6, Low: 0.3, Window: time.Minute, DownWindow: 10 * time.Minute}}
	for i, d := range []job.ScaleDecision{
		{Action: job.ScaleUp, Rule: job.RuleMin, Reason: "below the minimum of 1", Size: 0, Desired: 1},
		{Action: job.ScaleUp, Rule: job.RuleHigh, Reason: "load 82% above 60% for 1m", Size: 1, Desired: 2, Inputs: job.ScaleInputs{Load: 0.82}},
		{Action: job.ScaleUp, Rule: job.RuleHigh, Reason: "load 71% above 60% for 1m", Size: 2, Desired: 3, Inputs: job.ScaleInputs{Load: 0.71}},
		{Action: job.ScaleDown, Rule: job.RuleLow, Reason: "load 12% below 30% for 10m", Size: 3, Desired: 2, Drain: "w-3", Inputs: job.ScaleInputs{Load: 0.12}},
	} {
		d.Time = t0.Add(time.Duration(i) * 5 * time.Minute)
		p.Size, p.Desired, p.Last, p.Updated = d.Desired, d.Desired, &d, d.Time
		if err := s.Store.SavePool(context.Background(), token, p, &d); err != nil {
			t.Fatal(err)
		}
	}
	run(t, ctx, "pools page",
		chromedp.Navigate(s.URL+"/pools"),
		chromedp.WaitVisible(chromedp.CSS(`section.pool[data-name="batch"] svg path.size`)),
	)
	waitText(t, ctx, `section.pool[data-name="batch"] .decisions`, "load 12% below 30% for 10m")
	waitTrue(t, ctx, "the chart marks three scale-ups and one scale-down",
		`() => document.querySelectorAll('path.mark.up').length === 3 && document.querySelectorAll('path.mark.down').length === 1`)
	screenshot(t, ctx, "pools.png")
}

// The live views' API: server-sent events of every job or of one, and a
// job's status history.
func TestEventsAndHistory(t *testing.T) {
	s := start(t)
	all := openEvents(t, s.URL+"/api/v1/events")
	one := openEvents(t, s.URL+"/api/v1/events?job=watched")
	s.wait(s.submit(job.Request{ID: "other", Command: []string{"type:bash"}, Args: []string{"true"}}).ID, 20*time.Second)
	s.wait(s.submit(job.Request{ID: "watched", Tags: []string{"seen"}, Command: []string{"type:bash"}, Args: []string{"true"}}).ID, 20*time.Second)

	seen := func(events <-chan job.Event, id string) []job.Status {
		var out []job.Status
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.ID == id {
					out = append(out, ev.Status)
				}
				if ev.ID == id && ev.Status.Terminal() {
					return out
				}
			case <-deadline:
				t.Fatalf("no final event of %s; saw %v", id, out)
			}
		}
	}
	if got := seen(all, "other"); got[len(got)-1] != job.Succeeded {
		t.Errorf("all events of other: %v", got)
	}
	got := seen(one, "watched")
	if got[len(got)-1] != job.Succeeded || !contains(got, job.Running) {
		t.Errorf("events of watched: %v", got)
	}
	select {
	case ev := <-one:
		t.Errorf("the filtered stream sent an event of %s", ev.ID)
	default:
	}

	var h struct {
		ID      string      `json:"id"`
		History []job.Event `json:"history"`
	}
	if code := s.do("GET", "/api/v1/jobs/watched/history", nil, &h); code != 200 {
		t.Fatalf("history: %d", code)
	}
	var statuses []job.Status
	for _, e := range h.History {
		statuses = append(statuses, e.Status)
		if e.Time.IsZero() || e.ID != "watched" {
			t.Errorf("history entry %+v", e)
		}
	}
	want := []job.Status{job.Accepted, job.Queued, job.Claimed, job.Init, job.Running, job.Succeeded}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Errorf("history %v, want %v", statuses, want)
	}
	var e apiErr
	if code := s.do("GET", "/api/v1/jobs/nope/history", nil, &e); code != 404 {
		t.Errorf("history of an unknown job: %d %+v", code, e)
	}
	if code := s.do("GET", "/api/v1/events?job=a.b", nil, &e); code != 400 || e.Error.Field != "job" {
		t.Errorf("events of an invalid id: %d %+v", code, e)
	}

	var list struct{ Jobs []job.Job }
	s.do("GET", "/api/v1/jobs?tag=seen", nil, &list)
	if len(list.Jobs) != 1 || list.Jobs[0].ID != "watched" {
		t.Errorf("jobs tagged seen: %+v", list.Jobs)
	}
	if code := s.do("GET", "/api/v1/jobs?tag=a%20b", nil, &e); code != 400 || e.Error.Field != "tag" {
		t.Errorf("a bad tag: %d %+v", code, e)
	}
}

func contains(list []job.Status, st job.Status) bool {
	for _, s := range list {
		if s == st {
			return true
		}
	}
	return false
}

// openEvents reads a server-sent event stream into a channel until the test
// ends; it returns once the stream is open.
func openEvents(t *testing.T, url string) <-chan job.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan job.Event, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && name == "status":
				var ev job.Event
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev) == nil {
					out <- ev
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return out
}

// browser starts headless Chromium for one test and closes it when the test
// ends (before the fleet, whose cleanup was registered first). Without
// Chromium the test is skipped, except under CI=true, where it fails:
// .ci/run installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium is needed for the web UI tests and CI=true: install it (apt-get install -y chromium)")
		}
		t.Skip("no Chromium on PATH; the web UI tests need it (apt-get install -y chromium; under CI=true this fails)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in a container
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first action starts the browser, which lives as long as the
	// context of that action: so it gets ctx itself, not a shorter one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// uiStep bounds one step of a browser test.
const uiStep = 15 * time.Second

func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, uiStep)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// follow clicks a link and waits for the page it leads to.
func follow(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, uiStep)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitTrue waits until the page function returns true.
func waitTrue(t *testing.T, ctx context.Context, what, fn string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, uiStep)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[bool](fn,
		chromedp.WithPollingArgs(args...), chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(uiStep)))
	if err != nil {
		t.Fatalf("%s: %v (page: %s)", what, err, pageText(ctx))
	}
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	waitTrue(t, ctx, fmt.Sprintf("%s shows %q", sel, want),
		`(sel, want) => { const e = document.querySelector(sel); return !!e && e.textContent.includes(want); }`, sel, want)
}

// waitHidden waits until the element is hidden.
func waitHidden(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	waitTrue(t, ctx, sel+" is hidden", `(sel) => { const e = document.querySelector(sel); return !!e && e.hidden; }`, sel)
}

// waitRows waits until the jobs list has n rows.
func waitRows(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	waitTrue(t, ctx, fmt.Sprintf("the list has %d rows", n), `(n) => document.querySelectorAll('#jobs tbody tr').length === n`, n)
}

// pageText is the page's text, for failure messages.
func pageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	if err != nil {
		return err.Error()
	}
	return text
}

// screenshot writes the page to docs/img/<name> when JINN_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("JINN_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, uiStep)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("..", "docs", "img", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	t.Logf("wrote %s", path)
}
