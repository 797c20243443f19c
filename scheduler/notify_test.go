package scheduler

import (
	"testing"
	"time"
)

func TestNotifyBackoff(t *testing.T) {
	n := &Notifier{cfg: NotifyConfig{Backoff: time.Second, MaxBackoff: 5 * time.Second}}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := n.backoff(i + 1); got != w {
			t.Errorf("after try %d: %s, want %s", i+1, got, w)
		}
	}
	if got := n.backoff(1000); got != 5*time.Second {
		t.Errorf("after many tries: %s", got)
	}
}

func TestSign(t *testing.T) {
	// HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style vector.
	got := Sign("key", []byte("The quick brown fox jumps over the lazy dog"))
	if want := "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}
