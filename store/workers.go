package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/job"
)

// ErrNoSuchWorker means the worker has no live heartbeat.
var ErrNoSuchWorker = errors.New("no such worker")

// Heartbeat publishes a worker's live state; it expires after ttl unless
// renewed, and an expired heartbeat is how the fleet learns a worker died.
func (s *Store) Heartbeat(ctx context.Context, w *job.Worker, ttl time.Duration) error {
	data, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("encode worker %s: %w", w.ID, err)
	}
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, s.k.worker(w.ID), data, ttl)
	if w.Incarnation != "" {
		pipe.Set(ctx, s.k.alive(w.ID), w.Incarnation, ttl)
	}
	pipe.ZAdd(ctx, s.k.workers(), redis.Z{Score: float64(s.now().Unix()), Member: w.ID})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("heartbeat of worker %s: %w", w.ID, err)
	}
	return nil
}

// RemoveWorker deletes a worker's heartbeat at once (it exited cleanly).
func (s *Store) RemoveWorker(ctx context.Context, id string) error {
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.k.worker(id), s.k.alive(id))
	pipe.ZRem(ctx, s.k.workers(), id)
	_, err := pipe.Exec(ctx)
	return err
}

// Worker reads one live worker.
func (s *Store) Worker(ctx context.Context, id string) (*job.Worker, error) {
	data, err := s.rdb.Get(ctx, s.k.worker(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("worker %s: %w", id, ErrNoSuchWorker)
	}
	if err != nil {
		return nil, fmt.Errorf("read worker %s: %w", id, err)
	}
	var w job.Worker
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode worker %s: %w", id, err)
	}
	return &w, nil
}

// Workers lists the live workers, ordered by id.
func (s *Store) Workers(ctx context.Context) ([]job.Worker, error) {
	ids, err := s.rdb.ZRange(ctx, s.k.workers(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.worker(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	decoded := decodeWorkers(vals)
	out := make([]job.Worker, 0, len(ids))
	var gone []any
	for i, v := range vals {
		switch {
		case v == nil:
			gone = append(gone, ids[i])
		case decoded[i].ID != "":
			out = append(out, decoded[i])
		}
	}
	if len(gone) > 0 {
		s.rdb.ZRem(ctx, s.k.workers(), gone...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// decodeWorkers decodes the heartbeats of an MGET; a missing or undecodable
// one is left zero. Decoding is most of a leader's tick over a large fleet
// (docs/performance.md), so a large one is split over the cores.
func decodeWorkers(vals []any) []job.Worker {
	out := make([]job.Worker, len(vals))
	decode := func(from, to int) {
		for i := from; i < to; i++ {
			if str, ok := vals[i].(string); ok {
				if json.Unmarshal([]byte(str), &out[i]) != nil {
					out[i] = job.Worker{}
				}
			}
		}
	}
	const chunk = 1000
	if len(vals) <= chunk {
		decode(0, len(vals))
		return out
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for from := 0; from < len(vals); from += chunk {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			decode(from, min(from+chunk, len(vals)))
		}()
	}
	wg.Wait()
	return out
}

// FreeByCluster sums the free allowance (MiB) of the active workers serving
// each cluster, for resolution's "most free memory" rule.
func FreeByCluster(workers []job.Worker) map[string]int64 {
	free := map[string]int64{}
	for _, w := range workers {
		if w.State != job.WorkerActive {
			continue
		}
		for _, c := range w.Clusters {
			free[c] += int64(w.Free())
		}
	}
	return free
}
