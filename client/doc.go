// Package client is the Go client of jinn for producers and for the jinn
// command line: it submits jobs over jinn's HTTP API (or, with a Publisher,
// straight onto JetStream), reads where they stand, streams their output,
// kills them, and manages clusters and commands.
//
// It owns no state and no business rule: every decision is the server's. It
// must never import the server's packages (intake, scheduler, worker, store);
// it speaks only the wire formats of package job and the subjects of broker.
package client
