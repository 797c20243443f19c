package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/job"
)

// intakeClients is the number of concurrent HTTP clients and producers of
// sections 3 and 4: enough to keep two cores busy.
const intakeClients = 16

// benchIntake measures sections 3 and 4 on a fleet without workers, so that
// only admission and publishing use the machine.
func benchIntake(ctx context.Context, cfg BenchConfig, rep *BenchReport) error {
	f, err := upBench(ctx, cfg, filepath.Join(cfg.Dir, "intake"), "", -1, 0)
	if err != nil {
		return err
	}
	defer f.Close(context.Background())
	floorURL, stop, err := floorIntake(f.Broker.JS)
	if err != nil {
		return err
	}
	defer stop()
	user := benchUser("intake")
	submitHTTP := func(url string) func(context.Context) error {
		c := client.New(url)
		return func(ctx context.Context) error {
			_, err := c.Submit(ctx, trivial(user))
			return err
		}
	}
	cfg.step("3/6 intake floor (decode, publish to JINN_JOBS, await the ack): %d clients for %s", intakeClients, cfg.Window)
	if rep.IntakeFloor, err = closedLoop(ctx, intakeClients, cfg.Window, submitHTTP(floorURL)); err != nil {
		return err
	}
	cfg.step("3/6 intake POST /api/v1/jobs: %d clients for %s", intakeClients, cfg.Window)
	if rep.Intake, err = closedLoop(ctx, intakeClients, cfg.Window, submitHTTP(f.URL)); err != nil {
		return err
	}
	cfg.step("3/6 intake %.0f/s, floor %.0f/s", rep.Intake.PerSec, rep.IntakeFloor.PerSec)
	if cfg.RedisServer != "" {
		if rep.IntakeRedis, err = intakeOnRedis(ctx, cfg, submitHTTP); err != nil {
			return err
		}
		cfg.step("3/6 intake on redis-server %.0f/s", rep.IntakeRedis.PerSec)
	}

	pub := client.NewPublisher(f.Broker.JS)
	cfg.step("4/6 raw JetStream publish onto %s: %d producers for %s", broker.SubmitSubject, intakeClients, cfg.Window)
	rep.RawPublish, err = closedLoop(ctx, intakeClients, cfg.Window, func(ctx context.Context) error {
		req := trivial(user)
		data, err := json.Marshal(req)
		if err != nil {
			return err
		}
		_, err = f.Broker.JS.Publish(ctx, broker.SubmitSubject, data, jetstream.WithMsgID(req.ID))
		return err
	})
	if err != nil {
		return err
	}
	cfg.step("4/6 client.Publisher onto %s: %d producers for %s", broker.SubmitSubject, intakeClients, cfg.Window)
	rep.Publisher, err = closedLoop(ctx, intakeClients, cfg.Window, func(ctx context.Context) error {
		_, err := pub.Submit(ctx, trivial(user))
		return err
	})
	if err != nil {
		return err
	}
	cfg.step("4/6 publisher %.0f/s, raw %.0f/s", rep.Publisher.PerSec, rep.RawPublish.PerSec)
	return nil
}

// intakeOnRedis measures the intake of a fleet on redis-server.
func intakeOnRedis(ctx context.Context, cfg BenchConfig, submitHTTP func(string) func(context.Context) error) (Rate, error) {
	_, _, url, stop, err := startBenchRedis(ctx, cfg, cfg.RedisServer)
	if err != nil {
		return Rate{}, err
	}
	defer stop()
	f, err := upBench(ctx, cfg, filepath.Join(cfg.Dir, "intake-redis"), url, -1, 0)
	if err != nil {
		return Rate{}, err
	}
	defer f.Close(context.Background())
	cfg.step("3/6 intake POST /api/v1/jobs on redis-server: %d clients for %s", intakeClients, cfg.Window)
	return closedLoop(ctx, intakeClients, cfg.Window, submitHTTP(f.URL))
}

// closedLoop runs n clients, each calling op again as soon as it returns,
// for d.
func closedLoop(ctx context.Context, n int, d time.Duration, op func(context.Context) error) (Rate, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var r Rate
	var lastErr error
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx)
				took := time.Since(t0)
				if ctx.Err() != nil {
					return // cut by the end of the window
				}
				mu.Lock()
				if err != nil {
					r.Errors++
					lastErr = err
				} else {
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.N = len(lat)
	r.PerSec = float64(r.N) / elapsed.Seconds()
	r.Latency = percentiles(lat)
	if r.N == 0 && lastErr != nil {
		return r, fmt.Errorf("bench: every request failed: %w", lastErr)
	}
	return r, nil
}

// floorIntake serves the least an intake can do: decode the request, check
// it, publish it onto JINN_JOBS (a subject no worker pulls) awaiting the
// ack, and answer 202 with the job.
func floorIntake(js jetstream.JetStream) (string, func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		var req job.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := req.Validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		data, err := json.Marshal(&req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if _, err := js.Publish(r.Context(), broker.JobSubject("benchfloor", req.ID), data, jetstream.WithMsgID(req.ID)); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(job.Job{ID: req.ID, User: req.User, Status: job.Accepted})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // a dead server shows as failed requests
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
