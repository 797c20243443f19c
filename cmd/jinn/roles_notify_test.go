package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestNotifyFlags(t *testing.T) {
	parse := func(args ...string) (func() error, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		read := notifyFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return func() error { _, err := read(); return err }, nil
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	read := notifyFlags(fs)
	if err := fs.Parse([]string{"--webhook", "https://a.example/h", "--webhook", "http://127.0.0.1:9/x", "--webhook-secret", "s", "--webhook-all", "--webhook-tries", "3"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := read()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Webhooks, []string{"https://a.example/h", "http://127.0.0.1:9/x"}) || cfg.Secret != "s" || !cfg.All || cfg.MaxTries != 3 {
		t.Fatalf("config %+v", cfg)
	}
	if _, err := parse("--webhook", "ftp://x/y"); err == nil {
		t.Error("an ftp webhook was accepted")
	}
	if check, err := parse("--webhook-tries", "0"); err != nil || check() == nil {
		t.Errorf("--webhook-tries 0 accepted (%v)", err)
	}

	t.Setenv("JINN_WEBHOOKS", "https://a.example/1, https://a.example/2")
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	read = notifyFlags(fs)
	_ = fs.Parse(nil)
	if cfg, err = read(); err != nil || len(cfg.Webhooks) != 2 {
		t.Fatalf("from JINN_WEBHOOKS: %+v, %v", cfg.Webhooks, err)
	}
}
