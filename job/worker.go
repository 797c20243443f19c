package job

import "time"

// WorkerState says whether a worker takes new jobs.
type WorkerState string

const (
	WorkerActive   WorkerState = "ACTIVE"
	WorkerDraining WorkerState = "DRAINING" // finishes its jobs, pulls no more, then exits
)

// Worker is the live view of one worker, as its heartbeat publishes it.
type Worker struct {
	ID        string      `json:"id"`
	Pool      string      `json:"pool"`
	Host      string      `json:"host"`
	Clusters  []string    `json:"clusters"`
	Allowance int         `json:"allowance"` // MiB the worker gives to jobs
	Reserved  int         `json:"reserved"`  // MiB reserved by its running jobs
	Jobs      []string    `json:"jobs"`      // ids of its running jobs
	State     WorkerState `json:"state"`
	Version   string      `json:"version,omitempty"`
	Started   time.Time   `json:"started"`
	Heartbeat time.Time   `json:"heartbeat"`
}

// Free is the allowance not reserved by running jobs, in MiB.
func (w *Worker) Free() int { return w.Allowance - w.Reserved }
