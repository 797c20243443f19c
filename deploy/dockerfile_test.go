package deploy_test

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses a Dockerfile with BuildKit's own parser and linter;
// a lint warning is an error.
func parseDockerfile(path string) ([]instructions.Stage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var warnings []string
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		warnings = append(warnings, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	for _, w := range res.Warnings {
		warnings = append(warnings, w.Short)
	}
	if len(warnings) > 0 {
		return nil, fmt.Errorf("lint %s:\n%s", path, strings.Join(warnings, "\n"))
	}
	return stages, nil
}

// dockerfileBuildCommand is the shell command of the build stage's RUN that
// runs `go build`.
func dockerfileBuildCommand(path string) (string, error) {
	stages, err := parseDockerfile(path)
	if err != nil {
		return "", err
	}
	for _, st := range stages {
		for _, c := range st.Commands {
			if run, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(run.CmdLine, " "), "go build") {
				if !run.PrependShell {
					return "", fmt.Errorf("%s: the go build RUN must be in shell form", path)
				}
				return strings.Join(run.CmdLine, " "), nil
			}
		}
	}
	return "", fmt.Errorf("%s: no RUN with go build", path)
}

func TestDockerfile(t *testing.T) {
	stages, err := parseDockerfile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want 2: a Go builder and the runtime image", len(stages))
	}
	build, final := stages[0], stages[1]
	if !strings.HasPrefix(build.BaseName, "golang:") || build.Name == "" {
		t.Errorf("first stage is FROM %s AS %q, want a named golang builder", build.BaseName, build.Name)
	}
	if !strings.HasPrefix(final.BaseName, "debian:") || !strings.HasSuffix(final.BaseName, "-slim") {
		t.Errorf("runtime stage is FROM %s, want Debian slim (jobs need a shell)", final.BaseName)
	}

	cmdline, err := dockerfileBuildCommand(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-X main.version=${VERSION}", "-o /out/jinn", "./cmd/jinn"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("build command %q lacks %q", cmdline, want)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(cmdline), "./cmd/jinn") {
		t.Errorf("build command %q must build ./cmd/jinn, and only it", cmdline)
	}

	var user string
	var entrypoint, cmd []string
	copied, installed := false, ""
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT in shell form: signals would reach sh, not jinn")
			}
			entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			cmd = c.CmdLine
		case *instructions.CopyCommand:
			if c.From == build.Name && len(c.SourcePaths) == 1 && c.SourcePaths[0] == "/out/jinn" {
				copied = true
			}
		case *instructions.RunCommand:
			installed += strings.Join(c.CmdLine, " ")
		}
	}
	if !copied {
		t.Errorf("runtime stage does not COPY --from=%s /out/jinn", build.Name)
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("USER %q: want a numeric non-root user (Kubernetes' runAsNonRoot checks it)", user)
	}
	if len(entrypoint) == 0 || entrypoint[len(entrypoint)-1] != "/usr/local/bin/jinn" {
		t.Errorf("ENTRYPOINT %q must end in /usr/local/bin/jinn", entrypoint)
	}
	if len(cmd) > 0 {
		parseCommand(t, "Dockerfile CMD", cmd)
	}
	for _, pkg := range []string{"bash", "coreutils", "ca-certificates", "tini"} {
		if !strings.Contains(installed, " "+pkg) {
			t.Errorf("runtime stage does not install %s", pkg)
		}
	}
	if len(entrypoint) > 0 && entrypoint[0] == "/usr/bin/tini" && strings.Contains(strings.Join(entrypoint, " "), " -g") {
		t.Errorf("tini -g would send SIGTERM to the jobs too; a worker drains only when jinn alone gets it")
	}
}

// TestDockerfileBinary runs what the Dockerfile builds: a static binary that
// knows its version.
func TestDockerfileBinary(t *testing.T) {
	bin, _ := jinnBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a dynamic loader: not a static build", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s links %v: not a static build", bin, libs)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "jinn deploy-test" {
		t.Errorf("jinn version = %q, %v; want the VERSION build arg", out, err)
	}
}

// TestDockerignore: the build context keeps every package cmd/jinn needs.
func TestDockerignore(t *testing.T) {
	root := repoRoot(t)
	var patterns []string
	sc := bufio.NewScanner(strings.NewReader(string(readFile(t, ".dockerignore"))))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/jinn")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, dir := range strings.Fields(string(out)) {
		if rel, err := filepath.Rel(root, dir); err == nil && !strings.HasPrefix(rel, "..") {
			needed = append(needed, filepath.ToSlash(rel))
		}
	}
	for _, p := range needed {
		// A pattern excludes a path when it matches the path or a parent of it.
		parts := strings.Split(p, "/")
		for i := 1; i <= len(parts); i++ {
			prefix := strings.Join(parts[:i], "/")
			for _, pat := range patterns {
				if ok, _ := filepath.Match(strings.TrimPrefix(pat, "/"), prefix); ok {
					t.Errorf(".dockerignore pattern %q excludes %s, which cmd/jinn needs", pat, p)
				}
			}
		}
	}
	if len(needed) < 5 {
		t.Errorf("go list found only %v", needed)
	}
}
