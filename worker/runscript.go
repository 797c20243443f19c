package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jinn-fleet/jinn/job"
)

// Every job runs through a script the worker writes into its directory as
// `run` (Genie's run script): it exports the job's variables, sources the
// setup files in order (applications, cluster, command, job) with their
// output in jinn/setup.log, and then execs the command, which keeps the
// script's process id, process group and cgroup. A user reads exactly what
// ran, and can run it again by hand: `bash run` in the job's directory.
//
// When a setup file fails (it exits, or returns non-zero) or the command
// cannot be started, the script writes why to jinn/failed and exits with a
// code of its own; the executor makes that line the job's message.

// failedFile is where the run script says why the job failed before its
// command ran, relative to the job directory.
const failedFile = "jinn/failed"

// setupLog collects what the setup files print.
const setupLog = "jinn/setup.log"

// quote makes s one bash word, whatever it holds.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runScript is the script that runs spec's job.
func runScript(spec job.Spec, attempt int, worker string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("#!/usr/bin/env bash\n")
	p("# The run script of job %s, attempt %d, written by jinn worker %s.\n", spec.ID, attempt, worker)
	p("# It prepares the environment and runs the command: the job's variables,\n")
	p("# the setup files in order (applications, cluster, command, job), the command.\n")
	p("# To run it again by hand: cd into the job's directory and run `bash run`.\n\n")
	p("JINN_JOB_DIR=${JINN_JOB_DIR:-$(cd \"$(dirname \"${BASH_SOURCE[0]}\")\" && pwd)}\n")
	p("export JINN_JOB_DIR\ncd \"$JINN_JOB_DIR\" || exit 1\n\n")

	if len(spec.Env) > 0 {
		p("# Variables of the cluster, the command and the job, in that order of precedence.\n")
		keys := make([]string, 0, len(spec.Env))
		for k := range spec.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p("export %s=%s\n", k, quote(spec.Env[k]))
		}
		p("\n")
	}

	p("# The worker's dead man's switch: it writes to fd 3 every few seconds. If it\n")
	p("# stops (the worker died or froze), the whole job is killed before the job's\n")
	p("# next attempt can start on another worker.\n")
	p("if [ -n \"${JINN_BEAT_TIMEOUT:-}\" ] && { true <&3; } 2>/dev/null; then\n")
	p("  ( exec >/dev/null 2>&1; while read -r -t \"$JINN_BEAT_TIMEOUT\" _ <&3; do :; done; kill -KILL 0 ) &\n")
	p("  exec 3<&-\n")
	p("fi\n")
	p("unset JINN_BEAT_TIMEOUT\n\n")

	if len(spec.Setup) > 0 {
		p("# jinn_failed says why the job failed before its command ran.\n")
		p("jinn_failed() { mkdir -p jinn && printf '%%s\\n' \"$1\" > %s; }\n", failedFile)
		p("jinn_phase=\n")
		p("trap 'jinn_rc=$?; if [ -n \"$jinn_phase\" ]; then jinn_failed \"$jinn_phase exited with code $jinn_rc; its output is in %s\"; fi' EXIT\n", setupLog)
		p("# jinn_setup sources one setup file, with its output in %s.\n", setupLog)
		p("jinn_setup() {\n")
		p("  jinn_phase=\"setup of the $1 ($2)\"\n")
		p("  export JINN_SETUP_DIR=\"$JINN_JOB_DIR/$3\"\n")
		p("  printf '==> %%s: %%s\\n' \"$1\" \"$2\" >> %s\n", setupLog)
		p("  source \"$2\" >> %s 2>&1\n", setupLog)
		p("  local rc=$?\n")
		p("  if [ \"$rc\" -ne 0 ]; then\n")
		p("    jinn_phase=\n")
		p("    jinn_failed \"setup of the $1 ($2) failed with exit code $rc; its output is in %s\"\n", setupLog)
		p("    exit \"$rc\"\n")
		p("  fi\n")
		p("  jinn_phase=\n")
		p("  unset JINN_SETUP_DIR\n")
		p("}\n\n")
		p("# Setup files, in order.\n")
		for _, s := range spec.Setup {
			p("jinn_setup %s %s %s\n", quote(s.For), quote(s.Path), quote(s.Dir))
		}
		p("trap - EXIT\n\n")
	}

	p("# The command.\n")
	p("jinn_command=(")
	for i, a := range spec.Argv {
		if i > 0 {
			p(" ")
		}
		p("%s", quote(a))
	}
	p(")\n")
	// exec would fail too, but with bash's message; this one says it as
	// the job's message, and as Go's exec would.
	p("if ! type -P -- \"${jinn_command[0]}\" > /dev/null; then\n")
	p("  mkdir -p jinn\n")
	p("  case ${jinn_command[0]} in\n")
	p("  */*) if [ -e \"${jinn_command[0]}\" ]; then why='permission denied'; code=126; else why='no such file or directory'; code=127; fi ;;\n")
	p("  *) why='executable file not found in PATH'; code=127 ;;\n")
	p("  esac\n")
	p("  printf 'start: %%s: %%s\\n' \"${jinn_command[0]}\" \"$why\" > %s\n", failedFile)
	p("  printf 'jinn: start: %%s: %%s\\n' \"${jinn_command[0]}\" \"$why\" >&2\n")
	p("  exit \"$code\"\n")
	p("fi\n")
	p("exec \"${jinn_command[@]}\"\n")
	return b.String()
}

// writeRunScript writes the job's run script into its directory.
func (e *executor) writeRunScript() error {
	if err := os.MkdirAll(filepath.Join(e.dir, "jinn"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e.dir, "run"), []byte(runScript(e.spec, e.attempt, e.w.cfg.ID)), 0o755)
}

// failure returns what the run script said about a job that failed before
// its command ran, or "".
func (e *executor) failure() string {
	root, err := os.OpenRoot(e.dir)
	if err != nil {
		return ""
	}
	defer root.Close()
	f, err := root.Open(failedFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 1024)
	n, _ := f.Read(buf)
	return strings.TrimSpace(string(buf[:n]))
}

// exited is how the job ended given its process's exit: when the run script
// said why it failed before the command ran, that is the message.
func (e *executor) exited(err error) ending {
	end := exitEnding(err)
	if end.status == job.Failed {
		if why := e.failure(); why != "" {
			end.message = why
		}
	}
	return end
}
