package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestApplyApplication: applications are applied before the commands that
// link them, whatever their order in the file.
func TestApplyApplication(t *testing.T) {
	cleanEnv(t)
	f := newFake(t, map[string][]reply{
		"PUT /commands/spark":     {ok(`{"name":"spark"}`)},
		"PUT /applications/spark": {ok(`{"name":"spark"}`)},
	})
	yaml := `kind: command
name: spark
tags: [type:spark]
executable: [spark-submit]
applications: [spark]
---
kind: application
name: spark
files: [s3://apps/spark/spark.tgz]
setup: s3://apps/spark/setup.sh
`
	out, _, err := run(t, yaml, "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if out != "application/spark applied\ncommand/spark applied\n" {
		t.Errorf("stdout %q", out)
	}
	if keys := f.keys(); !slices.Equal(keys, []string{"PUT /applications/spark", "PUT /commands/spark"}) {
		t.Errorf("requests %q", keys)
	}
	assertJSON(t, "application", f.bodies("PUT /applications/spark")[0],
		`{"name":"spark","files":["s3://apps/spark/spark.tgz"],"setup":"s3://apps/spark/setup.sh"}`)
}

// TestSubmitFiles: --dependency and --setup go into the request; --attach
// sends a multipart body with a request part and the files.
func TestSubmitFiles(t *testing.T) {
	cleanEnv(t)
	f := newFake(t, map[string][]reply{"POST /jobs": {{status: 202, body: `{"id":"j1","status":"QUEUED"}`}}})
	out, _, err := run(t, "", "submit", "--dependency", "s3://bkt/x.jar", "--dependency", "file:///etc/hosts", "--setup", "s3://bkt/setup.sh", "--", "ls")
	if err != nil || out != "j1\n" {
		t.Fatalf("submit: %q %v", out, err)
	}
	body := f.bodies("POST /jobs")[0]
	if !strings.Contains(body, `"dependencies":["s3://bkt/x.jar","file:///etc/hosts"]`) || !strings.Contains(body, `"setup":"s3://bkt/setup.sh"`) {
		t.Errorf("body %s", body)
	}

	file := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(file, []byte("1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "", "submit", "--attach", file, "--", "cat", "data.csv"); err != nil {
		t.Fatal(err)
	}
	body = f.bodies("POST /jobs")[1]
	for _, s := range []string{`name="request"`, `"args":["cat","data.csv"]`, `name="file"; filename="data.csv"`, "1,2\n"} {
		if !strings.Contains(body, s) {
			t.Errorf("multipart body lacks %q:\n%s", s, body)
		}
	}
	if _, _, err := run(t, "", "submit", "--attach", "/no/such/file", "--", "true"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing attachment: %v", err)
	}
	if _, _, err := run(t, "", "submit", "--attach", file, "--nats", "nats://127.0.0.1:1", "--", "true"); err == nil || !strings.Contains(err.Error(), "--attach") {
		t.Errorf("--attach with --nats: %v", err)
	}
}
