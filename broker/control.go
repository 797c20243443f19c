package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/jinn-fleet/jinn/job"
)

// Verbs a worker answers on jinn.worker.<id>.<verb>.
const (
	VerbKill   = "kill"   // kill a job it runs
	VerbOutput = "output" // stat, list or read a file of a job's directory
	VerbDrain  = "drain"  // stop pulling, finish running jobs, exit
)

// MaxChunk is the most output bytes one control reply carries; it stays well
// under NATS's default 1 MiB payload limit.
const MaxChunk = 512 << 10

// ControlRequest is sent to one worker.
type ControlRequest struct {
	Job    string `json:"job,omitempty"`
	Path   string `json:"path,omitempty"`
	Offset int64  `json:"offset,omitempty"`
	Length int    `json:"length,omitempty"` // 0: stat (and list, for a directory) only
}

// ControlReply is a worker's answer.
type ControlReply struct {
	Error    string     `json:"error,omitempty"`
	NotFound bool       `json:"notFound,omitempty"`
	Info     *job.File  `json:"info,omitempty"`
	Entries  []job.File `json:"entries,omitempty"`
	Data     []byte     `json:"data,omitempty"`
}

// ErrNoWorker means no worker answered: it is gone or unreachable.
var ErrNoWorker = errors.New("worker did not answer")

// Ask sends a control request to one worker and waits for its reply.
func (b *Broker) Ask(ctx context.Context, worker, verb string, req ControlRequest) (*ControlReply, error) {
	data, _ := json.Marshal(req)
	msg, err := b.NC.RequestWithContext(ctx, WorkerSubject(worker, verb), data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("%s %s: %w", verb, worker, ErrNoWorker)
		}
		return nil, fmt.Errorf("%s %s: %w", verb, worker, err)
	}
	var rep ControlReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return nil, fmt.Errorf("%s %s: bad reply: %w", verb, worker, err)
	}
	return &rep, nil
}

// Serve answers a verb for one worker until the subscription is closed.
func (b *Broker) Serve(worker, verb string, fn func(ControlRequest) ControlReply) (*nats.Subscription, error) {
	return b.NC.Subscribe(WorkerSubject(worker, verb), func(m *nats.Msg) {
		var req ControlRequest
		var rep ControlReply
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep.Error = "bad request: " + err.Error()
		} else {
			rep = fn(req)
		}
		data, _ := json.Marshal(rep)
		_ = m.Respond(data)
	})
}
