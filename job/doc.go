// Package job is jinn's domain: job requests and records, the status machine,
// clusters, commands and applications, tag matching and resolution, and the
// validation of every name that ends up in a NATS subject or a Redis key.
//
// It is pure: it imports no other package of jinn and does no I/O, so every rule
// here is tested with tables.
package job
