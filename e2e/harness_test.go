package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
)

// sys is one running jinn (fleet.Up, the wiring of `jinn up`) for a test.
type sys struct {
	*fleet.Fleet
	t *testing.T
}

type option func(*fleet.Config)

func withWorkers(n int) option     { return func(c *fleet.Config) { c.Workers = n } }
func withAllowance(mib int) option { return func(c *fleet.Config) { c.Allowance = mib } }

// start brings up jinn on free ports in a temporary directory.
func start(t *testing.T, opts ...option) *sys {
	t.Helper()
	level := hclog.Warn
	if os.Getenv("JINN_TEST_LOG") != "" {
		level = hclog.Debug
	}
	cfg := fleet.Config{
		DataDir:    t.TempDir(),
		Listen:     "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1",
		Workers:    1,
		Allowance:  4096,
		AckWait:    3 * time.Second,
		Heartbeat:  200 * time.Millisecond,
		KillGrace:  time.Second,
		Log:        hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: level, Output: os.Stderr}),
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := fleet.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("fleet up: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.Close(ctx)
	})
	return &sys{Fleet: f, t: t}
}

// do sends a request to the intake and decodes a JSON answer into out.
func (s *sys) do(method, path string, body any, out any) int {
	s.t.Helper()
	return s.as("", method, path, body, out).StatusCode
}

// as sends a request with a bearer token ("" for none) and decodes a JSON
// answer into out; it returns the response (its body already read).
func (s *sys) as(token, method, path string, body any, out any) *http.Response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp
}

func (s *sys) submit(req job.Request) *job.Job {
	s.t.Helper()
	var j job.Job
	if code := s.do("POST", "/api/v1/jobs", req, &j); code != http.StatusAccepted {
		s.t.Fatalf("submit: status %d", code)
	}
	return &j
}

// wait returns the job once it is terminal, waking on its status events.
func (s *sys) wait(id string, within time.Duration) *job.Job {
	s.t.Helper()
	changed := make(chan struct{}, 1)
	sub, err := s.Broker.SubscribeEvents(id, func(job.Event) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		s.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	deadline := time.After(within)
	for {
		j, err := s.Store.Get(context.Background(), id)
		if err == nil && j.Status.Terminal() {
			return j
		}
		select {
		case <-changed:
		case <-time.After(time.Second): // an event published before the subscription
		case <-deadline:
			s.t.Fatalf("job %s not finished after %s (last: %+v)", id, within, j)
		}
	}
}

// waitStatus returns once the job has reached status st.
func (s *sys) waitStatus(id string, st job.Status, within time.Duration) *job.Job {
	s.t.Helper()
	changed := make(chan struct{}, 1)
	sub, _ := s.Broker.SubscribeEvents(id, func(job.Event) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer sub.Unsubscribe()
	deadline := time.After(within)
	for {
		j, err := s.Store.Get(context.Background(), id)
		if err == nil && j.Status == st {
			return j
		}
		select {
		case <-changed:
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			s.t.Fatalf("job %s did not reach %s within %s (last: %+v)", id, st, within, j)
		}
	}
}

// apiErr is the API's error body.
type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
	Job *job.Job `json:"job"`
}
