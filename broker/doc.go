// Package broker owns jinn's use of NATS: the JetStream streams and consumers,
// subject names, publishing with de-duplication, control requests to a single
// worker, and status events. Subpackage natsd runs an embedded server.
//
// It imports job and nothing else of jinn; it holds no job state of its own.
package broker
