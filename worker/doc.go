// Package worker runs jobs. A worker pulls the jobs of the clusters it serves,
// only while its free memory allowance can take them, runs each one as an OS
// process group in its own directory (executor.go owns a job's process from
// start to final status), extends its lease while the job runs, archives what
// the job left, writes the final status and only then acks. It answers
// control requests (kill, output, drain) over NATS and heartbeats into Redis.
//
// It imports job, broker and store; never scheduler or intake.
package worker
