package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/jinn-fleet/jinn/job"
)

// Clusters lists every cluster.
func (c *Client) Clusters(ctx context.Context) ([]job.Cluster, error) {
	var list struct {
		Clusters []job.Cluster `json:"clusters"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/clusters", nil, nil, &list); err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return list.Clusters, nil
}

// Cluster returns one cluster.
func (c *Client) Cluster(ctx context.Context, name string) (*job.Cluster, error) {
	var cl job.Cluster
	if err := c.entity(ctx, http.MethodGet, "cluster", "/clusters/", name, nil, &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// PutCluster creates or replaces the cluster cl.Name and returns it as stored.
func (c *Client) PutCluster(ctx context.Context, cl *job.Cluster) (*job.Cluster, error) {
	out := *cl
	if err := c.entity(ctx, http.MethodPut, "cluster", "/clusters/", cl.Name, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchCluster changes some fields of a cluster: patch is marshalled to the
// JSON body, e.g. map[string]any{"status": job.ClusterOutOfService}.
func (c *Client) PatchCluster(ctx context.Context, name string, patch any) (*job.Cluster, error) {
	var cl job.Cluster
	if err := c.entity(ctx, http.MethodPatch, "cluster", "/clusters/", name, patch, &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// DeleteCluster removes a cluster.
func (c *Client) DeleteCluster(ctx context.Context, name string) error {
	return c.entity(ctx, http.MethodDelete, "cluster", "/clusters/", name, nil, nil)
}

// Commands lists every command.
func (c *Client) Commands(ctx context.Context) ([]job.Command, error) {
	var list struct {
		Commands []job.Command `json:"commands"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/commands", nil, nil, &list); err != nil {
		return nil, fmt.Errorf("list commands: %w", err)
	}
	return list.Commands, nil
}

// Command returns one command.
func (c *Client) Command(ctx context.Context, name string) (*job.Command, error) {
	var cmd job.Command
	if err := c.entity(ctx, http.MethodGet, "command", "/commands/", name, nil, &cmd); err != nil {
		return nil, err
	}
	return &cmd, nil
}

// PutCommand creates or replaces the command cmd.Name and returns it as stored.
func (c *Client) PutCommand(ctx context.Context, cmd *job.Command) (*job.Command, error) {
	out := *cmd
	if err := c.entity(ctx, http.MethodPut, "command", "/commands/", cmd.Name, cmd, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchCommand changes some fields of a command: patch is marshalled to the
// JSON body, e.g. map[string]any{"status": job.CommandDeprecated}.
func (c *Client) PatchCommand(ctx context.Context, name string, patch any) (*job.Command, error) {
	var cmd job.Command
	if err := c.entity(ctx, http.MethodPatch, "command", "/commands/", name, patch, &cmd); err != nil {
		return nil, err
	}
	return &cmd, nil
}

// DeleteCommand removes a command.
func (c *Client) DeleteCommand(ctx context.Context, name string) error {
	return c.entity(ctx, http.MethodDelete, "command", "/commands/", name, nil, nil)
}

// Workers lists the live workers, as their heartbeats last described them.
func (c *Client) Workers(ctx context.Context) ([]job.Worker, error) {
	var list struct {
		Workers []job.Worker `json:"workers"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/workers", nil, nil, &list); err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return list.Workers, nil
}

// entity makes one call on a named configuration entity.
func (c *Client) entity(ctx context.Context, method, kind, prefix, name string, in, out any) error {
	p, err := seg(kind+" name", name)
	if err != nil {
		return err
	}
	if _, err := c.call(ctx, method, prefix+p, nil, in, out); err != nil {
		return fmt.Errorf("%s %s %s: %w", verbOf(method), kind, name, err)
	}
	return nil
}

func verbOf(method string) string {
	switch method {
	case http.MethodPut:
		return "put"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "get"
}
