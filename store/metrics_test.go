package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/store"
)

func TestErrorHookCountsFailedCommands(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(store.ErrorHook{})
	ctx := context.Background()
	count := func(cmd string) float64 { return testutil.ToFloat64(metrics.RedisErrors.WithLabelValues(cmd)) }
	getBefore, incrBefore, dialBefore, pipeBefore := count("get"), count("incr"), count("dial"), count("pipeline")

	// A missing key is an answer, not an error.
	if err := rdb.Get(ctx, "nothing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("get of a missing key: %v", err)
	}
	if got := count("get"); got != getBefore {
		t.Fatalf("redis.Nil counted: %v -> %v", getBefore, got)
	}
	// A script loaded on first use (NOSCRIPT, then EVAL) is not an error.
	if err := redis.NewScript(`return 1`).Run(ctx, rdb, nil).Err(); err != nil {
		t.Fatalf("script: %v", err)
	}
	if got := count("evalsha"); got != 0 {
		t.Fatalf("NOSCRIPT counted: %v", got)
	}
	// A command the server refuses counts under its name.
	if err := rdb.Set(ctx, "s", "text", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Incr(ctx, "s").Err(); err == nil {
		t.Fatal("incr of a string succeeded")
	}
	if got := count("incr"); got != incrBefore+1 {
		t.Fatalf("incr errors %v, want %v", got, incrBefore+1)
	}
	// With the server gone: failed connections and a failed pipeline.
	addr := mr.Addr()
	mr.Close()
	_ = rdb.Close()
	rdb = redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	rdb.AddHook(store.ErrorHook{})
	if err := rdb.Get(ctx, "k").Err(); err == nil {
		t.Fatal("get with the server gone succeeded")
	}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, "k"); return nil })
	if err == nil {
		t.Fatal("pipeline with the server gone succeeded")
	}
	if got := count("dial"); got < dialBefore+1 {
		t.Fatalf("dial errors %v, want more than %v", got, dialBefore)
	}
	if got := count("get"); got != getBefore+1 {
		t.Fatalf("get errors %v, want %v", got, getBefore+1)
	}
	if got := count("pipeline"); got <= pipeBefore {
		t.Fatalf("pipeline errors %v, want more than %v", got, pipeBefore)
	}
}
