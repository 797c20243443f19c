package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jinn-fleet/jinn/intake"
)

// A tokens file that does not parse stops the intake before it connects to
// anything, with the line at fault and where the format is described.
func TestIntakeRefusesABadTokensFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(intake.HashToken("x")+" alice superuser\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runIntake(context.Background(), []string{"--tokens", file, "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "docs/auth.md") {
		t.Errorf("err = %v", err)
	}
}

func TestTokenVerbRefusesAnUnknownRole(t *testing.T) {
	if err := runToken(context.Background(), []string{"alice", "root"}); err == nil || !strings.Contains(err.Error(), "user, operator or admin") {
		t.Errorf("err = %v", err)
	}
}
