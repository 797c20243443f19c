package scale_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jinn-fleet/jinn/scheduler/scale"
)

// A real script gets the pool, the size and the action, as arguments and in
// its environment.
func TestExec(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := filepath.Join(dir, "scale.sh")
	body := "#!/bin/sh\necho \"args=$* env=$JINN_POOL/$JINN_DESIRED/$JINN_ACTION/$JINN_WORKER\" >> " + log + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := scale.NewExec(scale.ExecConfig{Command: script + " {action} {pool} {desired} {worker}"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.SetDesired(ctx, "default", 3); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(ctx, "default", "w-7"); err != nil {
		t.Fatal(err)
	}
	if err := p.SetDesired(ctx, "gpu", 1); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(log)
	want := "args=set default 3 env=default/3/set/\n" +
		"args=remove default 2 w-7 env=default/2/remove/w-7\n" +
		"args=set gpu 1 env=gpu/1/set/\n"
	if string(got) != want {
		t.Fatalf("the script saw\n%s\nwant\n%s", got, want)
	}
	if _, err := p.List(ctx, "default"); !errors.Is(err, scale.ErrNoList) {
		t.Fatalf("list: %v, want ErrNoList", err)
	}
}

func TestExecFails(t *testing.T) {
	p, err := scale.NewExec(scale.ExecConfig{Command: "echo quota exceeded for {pool} >&2; exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	err = p.SetDesired(context.Background(), "default", 2)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "quota exceeded for default") {
		t.Fatalf("a failing command: %v", err)
	}
	if _, err := scale.NewExec(scale.ExecConfig{}); err == nil || !strings.Contains(err.Error(), "{pool} {desired}") {
		t.Fatalf("no command: %v", err)
	}
}
