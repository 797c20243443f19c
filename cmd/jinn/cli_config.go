package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jinn-fleet/jinn/client"
)

func (c *console) clusters(ctx context.Context, args []string) error {
	return c.entities(ctx, "cluster", args,
		func(cl *client.Client, asJSON bool) error {
			list, err := cl.Clusters(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return c.printJSON(orEmpty(list))
			}
			t := newTable(c.stdout, "NAME", "STATUS", "TAGS", "DESCRIPTION")
			for _, x := range list {
				t.row(x.Name, string(x.Status), dash(strings.Join(x.Tags, ",")), dash(x.Description))
			}
			return t.flush()
		},
		func(cl *client.Client, name, status string) (string, error) {
			x, err := cl.PatchCluster(ctx, name, map[string]string{"status": status})
			if err != nil {
				return "", err
			}
			return string(x.Status), nil
		},
		func(cl *client.Client, name string) error { return cl.DeleteCluster(ctx, name) },
	)
}

func (c *console) commands(ctx context.Context, args []string) error {
	return c.entities(ctx, "command", args,
		func(cl *client.Client, asJSON bool) error {
			list, err := cl.Commands(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return c.printJSON(orEmpty(list))
			}
			t := newTable(c.stdout, "NAME", "STATUS", "TAGS", "MEMORY", "EXECUTABLE")
			for _, x := range list {
				mem := "-"
				if x.Memory > 0 {
					mem = strconv.Itoa(x.Memory) + " MiB"
				}
				t.row(x.Name, string(x.Status), dash(strings.Join(x.Tags, ",")), mem, dash(strings.Join(x.Executable, " ")))
			}
			return t.flush()
		},
		func(cl *client.Client, name, status string) (string, error) {
			x, err := cl.PatchCommand(ctx, name, map[string]string{"status": status})
			if err != nil {
				return "", err
			}
			return string(x.Status), nil
		},
		func(cl *client.Client, name string) error { return cl.DeleteCommand(ctx, name) },
	)
}

// entities runs `jinn clusters` or `jinn commands`: a listing, or one of
// the sub-verbs set-status and delete.
func (c *console) entities(ctx context.Context, kind string, args []string,
	list func(cl *client.Client, asJSON bool) error,
	setStatus func(cl *client.Client, name, status string) (string, error),
	remove func(cl *client.Client, name string) error,
) error {
	sub := ""
	if len(args) > 0 && (args[0] == "set-status" || args[0] == "delete") {
		sub, args = args[0], args[1:]
	}
	name := kind + "s"
	synopsis := "[--json] | set-status NAME STATUS | delete NAME"
	about := fmt.Sprintf("Lists the %ss, sets the status of one, or deletes one.", kind)
	if sub != "" {
		name += " " + sub
		synopsis = map[string]string{"set-status": "NAME STATUS", "delete": "NAME"}[sub]
	}
	fs := c.newFlagSet(name, synopsis, about)
	srv := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON (listing only)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "set-status":
		if err := wantArgs(fs, pos, 2, 2, kind+" NAME and STATUS"); err != nil {
			return err
		}
		status, err := setStatus(srv.client(), pos[0], strings.ToUpper(pos[1]))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s/%s %s\n", kind, pos[0], status)
		return nil
	case "delete":
		if err := wantArgs(fs, pos, 1, 1, kind+" NAME"); err != nil {
			return err
		}
		if err := remove(srv.client(), pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s/%s deleted\n", kind, pos[0])
		return nil
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments, set-status or delete"); err != nil {
		return err
	}
	return list(srv.client(), *asJSON)
}

func (c *console) workers(ctx context.Context, args []string) error {
	fs := c.newFlagSet("workers", "[--json] [--watch]", "Lists the live workers; --watch re-draws the list.")
	srv := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	wf := addWatchFlags(fs, "") // cli_watch.go
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	cl := srv.client()
	if wf.on {
		return c.watch(ctx, wf, nil, func() (bool, error) { return false, c.showWorkers(ctx, cl, *asJSON) })
	}
	return c.showWorkers(ctx, cl, *asJSON)
}

func (c *console) showWorkers(ctx context.Context, cl *client.Client, asJSON bool) error {
	list, err := cl.Workers(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return c.printJSON(orEmpty(list))
	}
	t := newTable(c.stdout, "ID", "POOL", "HOST", "STATE", "JOBS", "RESERVED/ALLOWANCE MiB", "CLUSTERS", "HEARTBEAT-AGE")
	for _, w := range list {
		t.row(w.ID, dash(w.Pool), dash(w.Host), string(w.State), strconv.Itoa(len(w.Jobs)),
			fmt.Sprintf("%d/%d", w.Reserved, w.Allowance), dash(strings.Join(w.Clusters, ",")), c.age(&w.Heartbeat))
	}
	return t.flush()
}

// orEmpty makes a nil list print as [] rather than null.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
