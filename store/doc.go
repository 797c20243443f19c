// Package store owns jinn's state outside NATS streams: the live view of jobs
// and workers in Redis (changed only through the atomic scripts in
// scripts.go), the configuration entities in the jinn_config JetStream KV
// bucket, and the archive of finished jobs.
//
// Redis is soft state: it is the live view, not the system of record. The
// store imports job and nothing else of jinn; it never talks to a worker.
package store
