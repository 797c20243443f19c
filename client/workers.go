package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/jinn-fleet/jinn/job"
)

// DrainWorker asks worker id to drain: it stops pulling, finishes its running
// jobs, then exits. It returns the worker as its heartbeat shows it then
// (DRAINING). A worker that does not answer is a 404 *APIError.
func (c *Client) DrainWorker(ctx context.Context, id string) (*job.Worker, error) {
	p, err := seg("worker id", id)
	if err != nil {
		return nil, err
	}
	var w job.Worker
	if _, err := c.call(ctx, http.MethodPost, "/workers/"+p+"/drain", nil, nil, &w); err != nil {
		return nil, fmt.Errorf("drain worker %s: %w", id, err)
	}
	return &w, nil
}
