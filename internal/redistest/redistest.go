// Package redistest gives tests a Redis: miniredis in-process (fast, always
// there) or a real redis-server child process (the behaviour production
// sees). Backends runs one test body against both, which makes it the seam of
// the store's conformance suite.
//
// A test that needs redis-server runs when the binary is on PATH. Without it
// the test is skipped, except under CI=true, where it fails: .ci/run must
// install redis-server so that CI never passes by skipping.
//
// It is a test helper: nothing outside _test.go files imports it.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Binary is the name of the real server looked up on PATH.
const Binary = "redis-server"

// Names of the subtests Backends runs.
const (
	MiniName   = "miniredis"
	ServerName = "redis-server"
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 10 * time.Second

// minis maps a client returned by Mini to its server, so that AwaitExpiry can
// drive miniredis's clock (miniredis never expires keys on its own).
var (
	minisMu sync.Mutex
	minis   = map[*redis.Client]*miniredis.Miniredis{}
)

// Backends runs fn as the subtests "miniredis" and "redis-server", each with
// a fresh, empty Redis. The redis-server subtest skips (or fails under
// CI=true) when the binary is missing, like Server.
func Backends(t *testing.T, fn func(t *testing.T, rdb *redis.Client)) {
	t.Helper()
	t.Run(MiniName, func(t *testing.T) { fn(t, Mini(t)) })
	t.Run(ServerName, func(t *testing.T) { fn(t, Server(t)) })
}

// Mini returns a client of a new miniredis, closed when the test ends.
func Mini(t testing.TB) *redis.Client {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	minisMu.Lock()
	minis[rdb] = m
	minisMu.Unlock()
	t.Cleanup(func() {
		minisMu.Lock()
		delete(minis, rdb)
		minisMu.Unlock()
		_ = rdb.Close()
	})
	return rdb
}

// Server starts a redis-server of its own on a free loopback port, with no
// persistence and its files in t.TempDir(), and returns a client of it. The
// server is killed when the test ends.
func Server(t testing.TB) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		missing(t, os.Getenv("CI") == "true", err)
		return nil // unreachable: missing stops the test
	}
	dir := t.TempDir()
	// The free port is found by binding and releasing it, so another process
	// may take it before redis-server binds: retry on a new port then.
	var lastErr error
	for try := 0; try < 5; try++ {
		rdb, err := startServer(t, bin, dir, try)
		if err == nil {
			return rdb
		}
		lastErr = err
	}
	t.Fatalf("redistest: start %s: %v", bin, lastErr)
	return nil
}

// missing stops a test that needs redis-server when it is not installed.
func missing(t testing.TB, ci bool, err error) {
	t.Helper()
	if ci {
		t.Fatalf("redistest: %s is not installed (%v) and CI=true: .ci/run must install redis-server (e.g. apt-get install redis-server)", Binary, err)
	}
	t.Skipf("redistest: %s not on PATH (%v); skipping (under CI=true this fails)", Binary, err)
}

// startServer starts one redis-server and waits until it answers PING. An
// error means this attempt failed and a new port may be tried; the process
// of a failed attempt is already gone.
func startServer(t testing.TB, bin, dir string, try int) (*redis.Client, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "redis-"+strconv.Itoa(try)+".log")
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", logFile,
	)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		perr := ping(rdb, addr)
		if perr == nil {
			break
		}
		select {
		case werr := <-exited: // e.g. the port was taken meanwhile
			_ = rdb.Close()
			log, _ := os.ReadFile(logFile)
			return nil, fmt.Errorf("redis-server on port %d exited (%v): %s", port, werr, log)
		case <-deadline.C:
			_ = rdb.Close()
			stop()
			log, _ := os.ReadFile(logFile)
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within %s (last error: %v): %s", port, startTimeout, perr, log)
		case <-tick.C:
		}
	}
	_ = rdb.Close()
	// The client the test gets has the default retry policy, like production.
	rdb = redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() {
		_ = rdb.Close()
		stop()
	})
	return rdb, nil
}

// ping asks the server for PONG once it accepts connections; the plain dial
// first keeps go-redis from logging every refused connection while the
// server starts.
func ping(rdb *redis.Client, addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	_ = c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return rdb.Ping(ctx).Err()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

// AwaitExpiry returns once key has expired. On miniredis it moves the
// server's clock past the key's TTL; on a real server it polls until the key
// is gone, failing the test if that takes longer than the TTL plus a margin.
// The key must have a TTL.
func AwaitExpiry(t testing.TB, rdb *redis.Client, key string) {
	t.Helper()
	ctx := context.Background()
	ttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatalf("redistest: PTTL %s: %v", key, err)
	}
	switch {
	case ttl == -2: // no such key: it has expired already
		return
	case ttl < 0:
		t.Fatalf("redistest: key %s has no TTL; it will never expire", key)
	}
	minisMu.Lock()
	m := minis[rdb]
	minisMu.Unlock()
	if m != nil {
		m.FastForward(ttl)
		if m.Exists(key) {
			t.Fatalf("redistest: key %s still exists after fast-forwarding %s", key, ttl)
		}
		return
	}
	if err := poll(ttl+5*time.Second, func() (bool, error) {
		n, err := rdb.Exists(ctx, key).Result()
		return n == 0, err
	}); err != nil {
		t.Fatalf("redistest: key %s did not expire: %v", key, err)
	}
}

// poll calls done every few milliseconds until it reports true, fails, or
// the time is up.
func poll(within time.Duration, done func() (bool, error)) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-deadline.C:
			return errors.New("timed out after " + within.String())
		case <-tick.C:
		}
	}
}
