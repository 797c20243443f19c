package job

import "time"

// Job is the record of one job: its request, where it stands and where it ran.
type Job struct {
	ID       string     `json:"id"`
	Name     string     `json:"name,omitempty"`
	User     string     `json:"user,omitempty"`
	Status   Status     `json:"status"`
	Message  string     `json:"message,omitempty"`
	Cluster  string     `json:"cluster,omitempty"`
	Command  string     `json:"command,omitempty"`
	Worker   string     `json:"worker,omitempty"`
	Attempt  int        `json:"attempt"`
	Memory   int        `json:"memory,omitempty"` // MiB reserved
	Peak     int        `json:"peak,omitempty"`   // MiB measured at most
	ExitCode *int       `json:"exitCode,omitempty"`
	Created  *time.Time `json:"created,omitempty"`
	Queued   *time.Time `json:"queued,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// KillRequested is set by a kill; a worker that claims or starts the job
	// afterwards ends it as KILLED instead of running it.
	KillRequested bool     `json:"killRequested,omitempty"`
	Request       *Request `json:"request,omitempty"`
	// ArchiveStatus says whether its files reached the archive, which
	// ArchiveLocation names (…/jobs/<id>/); ArchiveMessage says why not.
	ArchiveStatus   ArchiveStatus `json:"archiveStatus,omitempty"`
	ArchiveLocation string        `json:"archiveLocation,omitempty"`
	ArchiveMessage  string        `json:"archiveMessage,omitempty"`
}

// Spec is a resolved job as it travels on jinn.jobs.<cluster>.<id>: everything a
// worker needs to run it without reading the configuration.
type Spec struct {
	ID      string            `json:"id"`
	User    string            `json:"user,omitempty"`
	Cluster string            `json:"cluster"`
	Command string            `json:"command"`
	Argv    []string          `json:"argv"`
	Env     map[string]string `json:"env,omitempty"`
	Memory  int               `json:"memory"`            // MiB
	Timeout int               `json:"timeout,omitempty"` // seconds
	Retries int               `json:"retries"`
	// Name and Fingerprint of the request let a worker rebuild the job's
	// record from its message when Redis lost it.
	Name        string `json:"name,omitempty"`
	Fingerprint string `json:"fp,omitempty"`
	// Files are fetched into the job directory before it runs; Setup files
	// (among them) are sourced by its run script in order. See Plan.
	Files []Dependency `json:"files,omitempty"`
	Setup []SetupFile  `json:"setup,omitempty"`
}

// Lease identifies one attempt at a job: the JetStream delivery that carries
// it. A status write from any other lease is stale and refused.
type Lease struct {
	Seq      uint64 // stream sequence of the message
	Delivery uint64 // delivery count of that message
}

// Event is one status change, published on jinn.events.<id> for live views.
type Event struct {
	ID       string    `json:"id"`
	Status   Status    `json:"status"`
	Message  string    `json:"message,omitempty"`
	Attempt  int       `json:"attempt,omitempty"`
	Worker   string    `json:"worker,omitempty"`
	ExitCode *int      `json:"exitCode,omitempty"`
	Time     time.Time `json:"time"`
}

// File is one entry of a job's directory, as the output API lists it.
type File struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
	Dir     bool      `json:"dir,omitempty"`
}
