package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"
)

// verb is one subcommand of jinn: `jinn <name> args...`.
type verb struct {
	summary string // one line for `jinn help`
	run     func(ctx context.Context, args []string) error
}

// exitError makes jinn exit with code and print nothing more: the verb has
// already said what there was to say (submit --wait passes on the exit code
// of its job this way).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// console is where the client verbs read and write; tests swap in buffers
// and a fixed clock.
type console struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	loc    *time.Location // for the times printed
}

func stdConsole() *console {
	return &console{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, now: time.Now, loc: time.Local}
}

// reachHint adds what to do next to an error of a server that cannot be
// reached at all; every other error passes unchanged.
func reachHint(err error) error {
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ue) && errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Errorf("%w\n(is jinn running there? `jinn up` starts one; --server or JINN_SERVER names another)", err)
	}
	return err
}
