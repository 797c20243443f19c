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
	ID string `json:"id"`
	// Incarnation tells this run of the worker from an earlier run with the
	// same id: a job owned by an earlier run is not owned by this one.
	Incarnation string      `json:"incarnation,omitempty"`
	Pool        string      `json:"pool"`
	Host        string      `json:"host"`
	Clusters    []string    `json:"clusters"`
	Allowance   int         `json:"allowance"`      // MiB the worker gives to jobs
	Reserved    int         `json:"reserved"`       // MiB reserved by its running jobs
	Used        int         `json:"used,omitempty"` // MiB its running jobs use, as measured; 0 when not measured
	Jobs        []string    `json:"jobs"`           // ids of its running jobs
	State       WorkerState `json:"state"`
	Version     string      `json:"version,omitempty"`
	Started     time.Time   `json:"started"`
	Heartbeat   time.Time   `json:"heartbeat"`
}

// Free is the allowance not reserved by running jobs, in MiB.
func (w *Worker) Free() int { return w.Allowance - w.Reserved }
