package redistest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestBackendsRunBoth(t *testing.T) {
	var ran []string
	Backends(t, func(t *testing.T, rdb *redis.Client) {
		ran = append(ran, t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		ctx := context.Background()
		if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("GET k = %q, %v; want v", v, err)
		}
	})
	if len(ran) == 0 || ran[0] != MiniName {
		t.Errorf("subtests ran: %v; want %s first", ran, MiniName)
	}
}

func TestEachClientIsEmpty(t *testing.T) {
	Backends(t, func(t *testing.T, rdb *redis.Client) {
		n, err := rdb.DBSize(context.Background()).Result()
		if err != nil || n != 0 {
			t.Fatalf("DBSIZE = %d, %v; want an empty server", n, err)
		}
		if err := rdb.Set(context.Background(), "left-behind", "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServerIsReal(t *testing.T) {
	rdb := Server(t)
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "redis_version:") {
		t.Fatalf("INFO server does not look like redis-server: %q", info)
	}
	// Persistence is off, as asked on the command line.
	cfg, err := rdb.ConfigGet(context.Background(), "appendonly").Result()
	if err != nil {
		t.Fatal(err)
	}
	if cfg["appendonly"] != "no" {
		t.Errorf("appendonly = %q, want no", cfg["appendonly"])
	}
}

func TestServerKilledAtCleanup(t *testing.T) {
	var addr string
	t.Run("inner", func(t *testing.T) {
		rdb := Server(t)
		addr = rdb.Options().Addr
	})
	if addr == "" {
		t.Skip("redis-server did not start (skipped inner test; the CI case is checked by the outer test)")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("redis-server at %s still accepts connections after its test ended", addr)
	}
}

func TestAwaitExpiry(t *testing.T) {
	Backends(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		if err := rdb.Set(ctx, "short", "x", 150*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, "long", "x", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		AwaitExpiry(t, rdb, "short")
		if n := rdb.Exists(ctx, "short").Val(); n != 0 {
			t.Fatal("short still exists after AwaitExpiry")
		}
		if n := rdb.Exists(ctx, "long").Val(); n != 1 {
			t.Fatal("long expired too early")
		}
		AwaitExpiry(t, rdb, "never-there") // a missing key has expired already
	})
}

// TestMissingBinary runs this test binary again with an empty PATH, once
// without CI (the test skips) and once with CI=true (it fails and says what
// to do).
func TestMissingBinary(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") == "1" {
		Server(t)
		t.Fatal("Server returned without redis-server on PATH")
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{ci: "", wantFail: false, want: "CI=true"},
		{ci: "true", wantFail: true, want: ".ci/run must install redis-server"},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMissingBinary$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "REDISTEST_CHILD=1", "PATH="+t.TempDir(), "CI="+tc.ci)
			out, err := cmd.CombinedOutput()
			failed := err != nil
			if failed != tc.wantFail {
				t.Fatalf("child failed = %v, want %v; output:\n%s", failed, tc.wantFail, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("child output does not mention %q:\n%s", tc.want, out)
			}
			if !tc.wantFail && !strings.Contains(string(out), "--- SKIP") {
				t.Errorf("child did not skip:\n%s", out)
			}
		})
	}
}
