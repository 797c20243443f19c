package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Shell completion: `jinn completion bash|zsh|fish` prints a script that
// completes the verbs of the verb table and each verb's flags. The flags are
// read from each verb's own usage (`jinn VERB -h`), so a new verb or flag is
// completed without touching this file.

// verbFlag is one flag of a verb.
type verbFlag struct{ name, usage string }

type verbInfo struct {
	name, summary string
	flags         []verbFlag
}

// skipHelp are verbs whose -h does not describe flags.
var skipHelp = map[string]bool{"version": true, "completion": true}

var usageFlag = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9-]*)`)

// completionTable lists every verb with its flags, sorted.
func completionTable() []verbInfo {
	var buf bytes.Buffer
	quiet := &console{stdin: strings.NewReader(""), stdout: &buf, stderr: &buf, now: time.Now, loc: time.UTC}
	verbs := allVerbs(quiet.verbs())
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing is reached: -h stops every verb at its flags
	var out []verbInfo
	for _, n := range names {
		vi := verbInfo{name: n, summary: verbs[n].summary}
		if !skipHelp[n] {
			vi.flags = parseUsage(captureUsage(&buf, func() { _ = verbs[n].run(ctx, []string{"-h"}) }))
		}
		out = append(out, vi)
	}
	return out
}

// captureUsage runs fn with os.Stdout and os.Stderr (where the roles print
// their usage) and buf (where the client verbs do) going to one buffer.
func captureUsage(buf *bytes.Buffer, fn func()) string {
	buf.Reset()
	f, err := os.CreateTemp("", "jinn-usage-*")
	if err != nil {
		fn()
		return buf.String()
	}
	defer os.Remove(f.Name())
	defer f.Close()
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = f, f
	fn()
	os.Stdout, os.Stderr = stdout, stderr
	_, _ = f.Seek(0, io.SeekStart)
	data, _ := io.ReadAll(f)
	return buf.String() + string(data)
}

// parseUsage reads the flags of flag.PrintDefaults: "  -name type" and the
// usage on the next line, indented by a tab.
func parseUsage(usage string) []verbFlag {
	var flags []verbFlag
	lines := strings.Split(usage, "\n")
	for i, l := range lines {
		m := usageFlag.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		f := verbFlag{name: m[1]}
		if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
			f.usage = strings.TrimSpace(lines[i+1])
		}
		flags = append(flags, f)
	}
	return flags
}

func runCompletion(_ context.Context, args []string) error {
	if len(args) != 1 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: jinn completion bash|zsh|fish\n\nPrints a completion script. For example:\n  bash: source <(jinn completion bash)   (or write it to /etc/bash_completion.d/jinn)\n  zsh:  jinn completion zsh > \"${fpath[1]}/_jinn\"\n  fish: jinn completion fish > ~/.config/fish/completions/jinn.fish")
		return fmt.Errorf("jinn completion: name a shell: bash, zsh or fish")
	}
	script, err := completionScript(args[0], completionTable())
	if err != nil {
		return err
	}
	_, err = fmt.Print(script)
	return err
}

func completionScript(shell string, verbs []verbInfo) (string, error) {
	var b strings.Builder
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.name
	}
	flagList := func(v verbInfo) string {
		var fl []string
		for _, f := range v.flags {
			fl = append(fl, "--"+f.name)
		}
		return strings.Join(fl, " ")
	}
	switch shell {
	case "bash":
		b.WriteString("# bash completion of jinn: source <(jinn completion bash)\n_jinn() {\n")
		b.WriteString("  local cur=${COMP_WORDS[COMP_CWORD]}\n")
		fmt.Fprintf(&b, "  if [ \"$COMP_CWORD\" -eq 1 ]; then\n    COMPREPLY=($(compgen -W %q -- \"$cur\"))\n    return\n  fi\n", strings.Join(names, " "))
		b.WriteString("  case $cur in -*) ;; *) return ;; esac\n  case ${COMP_WORDS[1]} in\n")
		for _, v := range verbs {
			if len(v.flags) > 0 {
				fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", v.name, flagList(v))
			}
		}
		b.WriteString("  esac\n}\ncomplete -o default -F _jinn jinn\n")
	case "zsh":
		b.WriteString("#compdef jinn\n# zsh completion of jinn: jinn completion zsh > \"${fpath[1]}/_jinn\"\n_jinn() {\n")
		b.WriteString("  if (( CURRENT == 2 )); then\n    local -a verbs\n    verbs=(\n")
		for _, v := range verbs {
			fmt.Fprintf(&b, "      %s\n", zshQuote(v.name+":"+v.summary))
		}
		b.WriteString("    )\n    _describe 'command' verbs\n    return\n  fi\n")
		b.WriteString("  if [[ $PREFIX != -* ]]; then\n    _files\n    return\n  fi\n  local -a flags\n  case $words[2] in\n")
		for _, v := range verbs {
			if len(v.flags) == 0 {
				continue
			}
			fmt.Fprintf(&b, "    %s) flags=(", v.name)
			for _, f := range v.flags {
				fmt.Fprintf(&b, " %s", zshQuote("--"+f.name+":"+strings.ReplaceAll(f.usage, ":", `\:`)))
			}
			b.WriteString(" ) ;;\n")
		}
		b.WriteString("  esac\n  _describe 'flag' flags\n}\ncompdef _jinn jinn\n")
	case "fish":
		b.WriteString("# fish completion of jinn: jinn completion fish > ~/.config/fish/completions/jinn.fish\n")
		for _, v := range verbs {
			fmt.Fprintf(&b, "complete -c jinn -f -n __fish_use_subcommand -a %s -d %s\n", v.name, fishQuote(v.summary))
		}
		for _, v := range verbs {
			for _, f := range v.flags {
				fmt.Fprintf(&b, "complete -c jinn -n '__fish_seen_subcommand_from %s' -l %s -d %s\n", v.name, f.name, fishQuote(f.usage))
			}
		}
	default:
		return "", fmt.Errorf("jinn completion: unknown shell %q: use bash, zsh or fish", shell)
	}
	return b.String(), nil
}

// zshQuote and fishQuote quote s in single quotes for their shell.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
func fishQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
