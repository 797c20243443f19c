package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestSecondsFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{"90", 90, false}, {"0", 0, false}, {"10m", 600, false}, {"1h30m", 5400, false},
		{"1500ms", 2, false}, // rounded up: a limit is never shortened
		{"-1", 0, true}, {"-5s", 0, true}, {"ten", 0, true}, {"", 0, true},
	} {
		var f secondsFlag
		err := f.Set(tc.in)
		if (err != nil) != tc.bad || int(f) != tc.want {
			t.Errorf("Set(%q) = %d, %v", tc.in, f, err)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		json bool
	}{
		{[]string{"j1", "--json"}, []string{"j1"}, true},
		{[]string{"--json", "j1", "j2"}, []string{"j1", "j2"}, true},
		{[]string{"j1", "--", "--json"}, []string{"j1", "--json"}, false},
		{[]string{"--", "-x"}, []string{"-x"}, false},
		{nil, nil, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		asJSON := fs.Bool("json", false, "")
		pos, err := parseArgs(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *asJSON != tc.json {
			t.Errorf("parseArgs(%q) = %q, json %v, %v", tc.args, pos, *asJSON, err)
		}
	}
}

func TestEnvString(t *testing.T) {
	t.Setenv("JINN_TEST_X", "")
	if got := envString("JINN_TEST_X", "def"); got != "def" {
		t.Errorf("empty: %q", got)
	}
	t.Setenv("JINN_TEST_X", "set")
	if got := envString("JINN_TEST_X", "def"); got != "set" {
		t.Errorf("set: %q", got)
	}
}

func TestSplitTags(t *testing.T) {
	if got := splitTags(" type:exec, os:linux,,"); !slices.Equal(got, []string{"type:exec", "os:linux"}) {
		t.Errorf("splitTags = %q", got)
	}
	var c criteriaFlag
	if err := c.Set(" , "); err == nil {
		t.Error("an empty criterion was accepted")
	}
}

func TestSplitDocuments(t *testing.T) {
	in := "a: 1\n---\nb: 2\n--- # c\nc: 3\n----\nd: 4\r\n---\r\n"
	got := splitDocuments([]byte(in))
	want := []string{"a: 1\n", "\n---\nb: 2\n", "\n\n\n--- # c\nc: 3\n----\nd: 4\r\n", "\n\n\n\n\n\n\n---\r\n"}
	if len(got) != len(want) {
		t.Fatalf("%d documents: %q", len(got), got)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("document %d = %q, want %q", i, got[i], want[i])
		}
	}
}
