// Package deploy_test proves that what operators run jinn with agrees with
// jinn itself: the Dockerfile, docker-compose.yml, the Kubernetes manifests,
// the CloudFormation template, the systemd units, and the NATS and Redis
// configurations all parse, and every jinn command line in them names a real
// role with real flags. The flags are read from the usage of a jinn binary
// built by the Dockerfile's own build command, so these tests follow the code
// as flags come and go. The local cluster test runs the loopback fleet of
// deploy/local-cluster.sh and a job through it.
package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildBin != "" {
		os.RemoveAll(filepath.Dir(buildBin))
	}
	os.Exit(code)
}

// repoRoot is the module root: deploy/ is one level below it.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Dir(filepath.Dir(file))
}

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// roleSpec is what a role's usage says: its flags (and whether each takes a
// value) and the JINN_* variables it reads.
type roleSpec struct {
	flags map[string]bool // name → takes a value
	envs  map[string]bool
}

// roles are the long-running roles a deployment runs.
var roles = []string{"nats", "intake", "scheduler", "worker", "up"}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	specs     map[string]roleSpec
)

// jinnBinary builds cmd/jinn once per test binary with the Dockerfile's own
// build command and reads every role's usage.
func jinnBinary(t testing.TB) (string, map[string]roleSpec) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jinn-deploy-test-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "jinn")
		cmdline, err := dockerfileBuildCommand(filepath.Join(repoRoot(t), "Dockerfile"))
		if err != nil {
			buildErr = err
			return
		}
		// The Dockerfile writes /out/jinn; here it goes to a temporary file.
		cmdline = strings.ReplaceAll(cmdline, "/out/jinn", buildBin)
		cmd := exec.Command("sh", "-c", cmdline)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "VERSION=deploy-test")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%s: %v\n%s", cmdline, err, out)
			return
		}
		specs = map[string]roleSpec{}
		for _, r := range roles {
			s, err := usageOf(buildBin, r)
			if err != nil {
				buildErr = err
				return
			}
			specs[r] = s
		}
	})
	if buildErr != nil {
		t.Fatalf("build jinn: %v", buildErr)
	}
	return buildBin, specs
}

var (
	flagLine = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?: (\S+))?`)
	envWord  = regexp.MustCompile(`\(env (JINN_[A-Z0-9_]+)`)
)

// usageOf runs `jinn <role> -h` and parses the flag set it prints.
func usageOf(bin, role string) (roleSpec, error) {
	out, err := exec.Command(bin, role, "-h").CombinedOutput()
	if err != nil {
		return roleSpec{}, fmt.Errorf("jinn %s -h: %v\n%s", role, err, out)
	}
	s := roleSpec{flags: map[string]bool{}, envs: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			// Go's usage names the value after the flag; a bool flag has none.
			s.flags[m[1]] = m[2] != ""
		}
		for _, m := range envWord.FindAllStringSubmatch(sc.Text(), -1) {
			s.envs[m[1]] = true
		}
	}
	if len(s.flags) == 0 {
		return roleSpec{}, fmt.Errorf("jinn %s -h printed no flags:\n%s", role, out)
	}
	return s, nil
}

// command is one jinn command line found in a deployment file.
type command struct {
	where string            // file and place, for messages
	role  string            // first word
	flags map[string]string // flag → value ("" for a bool flag)
}

// parseCommand checks args (the words after the binary) against the real
// roles and flags and returns what it set. Flags are read the way Go's flag
// package reads them: -f, --f, -f=v, --f=v, or -f v for a flag with a value.
func parseCommand(t testing.TB, where string, args []string) command {
	t.Helper()
	_, specs := jinnBinary(t)
	c := command{where: where, flags: map[string]string{}}
	if len(args) == 0 {
		t.Errorf("%s: no jinn role given", where)
		return c
	}
	c.role = args[0]
	spec, ok := specs[c.role]
	if !ok {
		t.Errorf("%s: %q is not a jinn role (roles: %s)", where, c.role, strings.Join(roles, ", "))
		return c
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			t.Errorf("%s: jinn %s takes no arguments, only flags: %q", where, c.role, a)
			return c
		}
		name := strings.TrimLeft(a, "-")
		value, hasValue := "", false
		if n, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = n, v, true
		}
		takesValue, known := spec.flags[name]
		if !known {
			t.Errorf("%s: jinn %s has no flag --%s (it has: %s)", where, c.role, name, strings.Join(sortedKeys(spec.flags), ", "))
			continue
		}
		if takesValue && !hasValue {
			if i+1 >= len(args) {
				t.Errorf("%s: jinn %s --%s needs a value", where, c.role, name)
				continue
			}
			i++
			value = args[i]
		}
		if _, dup := c.flags[name]; dup {
			t.Errorf("%s: --%s given twice", where, name)
		}
		c.flags[name] = value
	}
	return c
}

// checkEnv checks that every JINN_* variable set for a role is one it reads.
func checkEnv(t testing.TB, where, role string, env map[string]string) {
	t.Helper()
	_, specs := jinnBinary(t)
	spec, ok := specs[role]
	if !ok {
		return // parseCommand reported it
	}
	for k := range env {
		if strings.HasPrefix(k, "JINN_") && !spec.envs[k] {
			t.Errorf("%s: jinn %s reads no variable %s (it reads: %s)", where, role, k, strings.Join(sortedKeys(spec.envs), ", "))
		}
	}
}

// checkEnvAny checks a file of variables that several roles on one machine
// share: each JINN_* variable is one that one of them reads.
func checkEnvAny(t testing.TB, where string, env map[string]string, roleNames ...string) {
	t.Helper()
	_, specs := jinnBinary(t)
	for k := range env {
		read := false
		for _, r := range roleNames {
			read = read || specs[r].envs[k]
		}
		if strings.HasPrefix(k, "JINN_") && !read {
			t.Errorf("%s: none of %v reads %s", where, roleNames, k)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// setting is the value a role gets for a flag: the flag when given, else its
// environment variable, else "".
func (c command) setting(flag, env string, vars map[string]string) string {
	if v, ok := c.flags[flag]; ok {
		return v
	}
	return vars[env]
}

// splitList splits a comma separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// needBinary skips a test whose binary is missing, except under CI=true,
// where a missing binary fails it.
func needBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI must install it (.ci/run)", name)
		}
		t.Skipf("%s is not installed (under CI=true this fails)", name)
	}
	return p
}
