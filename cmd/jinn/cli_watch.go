package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// watchFlags are --watch and --interval of the verbs that re-draw.
type watchFlags struct {
	on    bool
	every time.Duration
}

func addWatchFlags(fs *flag.FlagSet, what string) *watchFlags {
	w := &watchFlags{}
	fs.BoolVar(&w.on, "watch", false, "re-draw every --interval "+what+" (Ctrl-C stops)")
	fs.DurationVar(&w.every, "interval", time.Second, "time between two re-draws with --watch")
	return w
}

// watch calls draw at once and then every interval, until draw says it is
// done, it fails, or ctx ends (Ctrl-C), which is no error. On a terminal each
// frame replaces the last; otherwise frames are separated by a blank line.
// A signal on wake (nil: none) re-draws at once.
func (c *console) watch(ctx context.Context, w *watchFlags, wake <-chan struct{}, draw func() (done bool, err error)) error {
	if w.every <= 0 {
		return fmt.Errorf("--interval %s: give a positive duration such as 1s", w.every)
	}
	t := time.NewTicker(w.every)
	defer t.Stop()
	for frame := 0; ; frame++ {
		if frame > 0 {
			if isTerminal(c.stdout) {
				fmt.Fprint(c.stdout, "\x1b[H\x1b[2J") // home, clear the screen
			} else {
				fmt.Fprintln(c.stdout)
			}
		} else if isTerminal(c.stdout) {
			fmt.Fprint(c.stdout, "\x1b[H\x1b[2J")
		}
		done, err := draw()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wake:
		}
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// jobEvents signals on the returned channel whenever the intake's event
// stream (GET /api/v1/events?job=ID) reports a status change of the job,
// until ctx ends. A server without the stream just never signals: the
// watch then re-draws on its interval alone.
func (s *server) jobEvents(ctx context.Context, id string) <-chan struct{} {
	wake := make(chan struct{}, 1)
	base := strings.TrimRight(s.url, "/")
	if !strings.HasSuffix(base, "/api/v1") {
		base += "/api/v1"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/events?job="+url.QueryEscape(id), nil)
	if err != nil {
		return wake
	}
	token := s.token
	if token == "" {
		token = os.Getenv("JINN_TOKEN")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "text/event-stream")
	hc := http.DefaultClient
	if s.ca != "" {
		hc = &http.Client{Transport: trustingTransport(s.ca)}
	}
	go func() {
		resp, err := hc.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "event: status" {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}
	}()
	return wake
}
