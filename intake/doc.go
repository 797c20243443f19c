// Package intake is jinn's HTTP API under /api/v1. It is thin: it decodes and
// checks requests, calls the scheduler's admission and the store, and asks a
// worker over NATS for live output. It holds no business rule of its own and
// no state; run as many intakes as load needs.
//
// It imports job, broker, store and scheduler; never worker.
package intake
