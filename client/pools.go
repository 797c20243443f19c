package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/jinn-fleet/jinn/job"
)

// Pools lists the pools the autoscaler sizes, each with up to decisions of
// its latest decisions (negative: the server's default).
func (c *Client) Pools(ctx context.Context, decisions int) ([]job.Pool, error) {
	var list struct {
		Pools []job.Pool `json:"pools"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/pools", decisionsQuery(decisions), nil, &list); err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	return list.Pools, nil
}

// Pool returns one pool with up to decisions of its latest decisions
// (negative: the server's default). A pool the autoscaler does not size is
// an *APIError with status 404 (IsNotFound).
func (c *Client) Pool(ctx context.Context, name string, decisions int) (*job.Pool, error) {
	p, err := seg("pool name", name)
	if err != nil {
		return nil, err
	}
	var out job.Pool
	if _, err := c.call(ctx, http.MethodGet, "/pools/"+p, decisionsQuery(decisions), nil, &out); err != nil {
		return nil, fmt.Errorf("get pool %s: %w", name, err)
	}
	return &out, nil
}

func decisionsQuery(n int) url.Values {
	if n < 0 {
		return nil
	}
	return url.Values{"decisions": {strconv.Itoa(n)}}
}
