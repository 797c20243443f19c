package worker

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jinn-fleet/jinn/job"
)

// runIn writes spec's run script into a new directory with the given files
// and runs it with bash as the executor does; it returns the directory, the
// output and the exit code.
func runIn(t *testing.T, spec job.Spec, files map[string]string) (string, string, int) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("bash is needed: every job runs through its run script")
		}
		t.Skip("no bash (under CI=true this fails)")
	}
	dir := t.TempDir()
	for p, body := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "run"), []byte(runScript(spec, 1, "w1")), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(dir, "run"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "JINN_JOB_DIR="+dir)
	out, err := cmd.CombinedOutput()
	code := 0
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		code = xe.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return dir, string(out), code
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRunScriptOrder: setup files are sourced in the spec's order (which
// job.Plan makes applications, cluster, command, job), each with its own
// JINN_SETUP_DIR, and what they export reaches the command.
func TestRunScriptOrder(t *testing.T) {
	t.Parallel()
	step := func(name string) string {
		return "echo " + name + " >> \"$JINN_JOB_DIR/order\"\necho \"" + name + " in $JINN_SETUP_DIR\"\nexport PATH_TRAIL=\"$PATH_TRAIL:" + name + "\"\n"
	}
	spec := job.Spec{
		ID:   "j1",
		Argv: []string{"bash", "-c", `echo "trail=$PATH_TRAIL quoted=$QUOTED"; printf '%s|' "$@"`, "argv0", "it's", "two words", "$HOME"},
		Env:  map[string]string{"QUOTED": "a 'b' \"c\" $d\nnext"},
		Setup: []job.SetupFile{
			{For: "application spark", Path: "jinn/applications/spark/setup.sh", Dir: "jinn/applications/spark"},
			{For: "application hive", Path: "jinn/applications/hive/setup.sh", Dir: "jinn/applications/hive"},
			{For: "cluster prod", Path: "jinn/cluster/prod/setup.sh", Dir: "jinn/cluster/prod"},
			{For: "command sparkq", Path: "jinn/command/sparkq/env.sh", Dir: "jinn/command/sparkq"},
			{For: "job", Path: "jinn/job/mine.sh", Dir: "."},
		},
	}
	dir, out, code := runIn(t, spec, map[string]string{
		"jinn/applications/spark/setup.sh": step("spark"),
		"jinn/applications/hive/setup.sh":  step("hive"),
		"jinn/cluster/prod/setup.sh":       step("cluster"),
		"jinn/command/sparkq/env.sh":       step("command"),
		"jinn/job/mine.sh":                 step("job"),
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if got := readFile(t, filepath.Join(dir, "order")); got != "spark\nhive\ncluster\ncommand\njob\n" {
		t.Errorf("order %q", got)
	}
	want := "trail=:spark:hive:cluster:command:job quoted=a 'b' \"c\" $d\nnext\nit's|two words|$HOME|"
	if out != want {
		t.Errorf("command printed %q, want %q", out, want)
	}
	log := readFile(t, filepath.Join(dir, "jinn/setup.log"))
	for _, s := range []string{"==> application spark: jinn/applications/spark/setup.sh", "spark in " + dir + "/jinn/applications/spark", "job in " + dir + "/."} {
		if !strings.Contains(log, s) {
			t.Errorf("setup.log lacks %q:\n%s", s, log)
		}
	}
}

func TestRunScriptSetupFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
		code             int
	}{
		{"returns non-zero", "echo broken\nfalse\n", "setup of the application spark (jinn/applications/spark/setup.sh) failed with exit code 1; its output is in jinn/setup.log", 1},
		{"exits", "exit 7\n", "setup of the application spark (jinn/applications/spark/setup.sh) exited with code 7; its output is in jinn/setup.log", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := job.Spec{ID: "j1", Argv: []string{"touch", "ran"},
				Setup: []job.SetupFile{{For: "application spark", Path: "jinn/applications/spark/setup.sh", Dir: "jinn/applications/spark"}}}
			dir, _, code := runIn(t, spec, map[string]string{"jinn/applications/spark/setup.sh": tc.body})
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if got := strings.TrimSpace(readFile(t, filepath.Join(dir, failedFile))); got != tc.want {
				t.Errorf("failed = %q, want %q", got, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
				t.Error("the command ran after its setup failed")
			}
		})
	}
}

func TestRunScriptCommandMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for argv0, want := range map[string]string{
		"/no/such/program":    "start: /no/such/program: no such file or directory",
		"no-such-program-xyz": "start: no-such-program-xyz: executable file not found in PATH",
		notExec:               "start: " + notExec + ": permission denied",
	} {
		d, _, code := runIn(t, job.Spec{ID: "j1", Argv: []string{argv0}}, nil)
		if code != 127 && code != 126 {
			t.Errorf("%s: exit %d", argv0, code)
		}
		if got := strings.TrimSpace(readFile(t, filepath.Join(d, failedFile))); got != want {
			t.Errorf("%s: failed = %q, want %q", argv0, got, want)
		}
	}
}

func TestWorkerSecretsStayWithTheWorker(t *testing.T) {
	for kv, secret := range map[string]bool{
		"JINN_REDIS=redis://x":         true,
		"AWS_SECRET_ACCESS_KEY=s":      true,
		"AWS_ACCESS_KEY_ID=k":          true,
		"AWS_SESSION_TOKEN=t":          true,
		"AWS_REGION=us-east-1":         false,
		"PATH=/usr/bin":                false,
		"MY_JINN_THING=1":              false,
		"AWS_ACCESS_KEY_ID_EXTRA=kept": false,
	} {
		if got := workerSecret(kv); got != secret {
			t.Errorf("workerSecret(%q) = %v, want %v", kv, got, secret)
		}
	}
}
