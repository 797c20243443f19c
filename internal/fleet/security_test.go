package fleet

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestSecurityRefusesHalfSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "x")
	if err := os.WriteFile(file, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Security{
		{NATSCreds: file, NATSNkey: file},
		{NATSTLSCert: file},
		{NATSTLSCA: filepath.Join(dir, "missing")},
		{NATSNkey: file}, // not a seed
	} {
		if _, err := s.natsOptions(); err == nil {
			t.Errorf("natsOptions(%+v) took it", s)
		}
	}
	for _, s := range []Security{{RedisTLSCA: file}, {RedisTLSCert: file}, {RedisTLSCA: filepath.Join(dir, "missing")}} {
		if err := s.redisTLS(&redis.Options{Addr: "127.0.0.1:6379"}); err == nil {
			t.Errorf("redisTLS(%+v) took it", s)
		}
	}
	opts := &redis.Options{Addr: "127.0.0.1:6379"}
	if err := (Security{}).redisTLS(opts); err != nil || opts.TLSConfig != nil {
		t.Errorf("no settings changed the options: %v %v", err, opts.TLSConfig)
	}
}

func TestSecurityArgs(t *testing.T) {
	got := Security{NATSNkey: "/k", RedisTLSCA: "/ca"}.args()
	if want := []string{"--nats-nkey", "/k", "--redis-tls-ca", "/ca"}; !slices.Equal(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
}
