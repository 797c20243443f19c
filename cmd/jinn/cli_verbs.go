package main

import "context"

// clientVerbs are the verbs that talk to a running jinn through its HTTP API
// (submit can also publish straight onto JetStream).
var clientVerbs = stdConsole().verbs()

func (c *console) verbs() map[string]verb {
	v := func(summary string, run func(context.Context, []string) error) verb {
		return verb{summary: summary, run: func(ctx context.Context, args []string) error {
			return reachHint(run(ctx, args))
		}}
	}
	return map[string]verb{
		"submit":   v("submit a job; --wait streams its output and exits with its exit code", c.submit),
		"status":   v("show where a job stands", c.status),
		"logs":     v("print a job's stdout (or --stderr); -f follows it", c.logs),
		"kill":     v("kill jobs", c.kill),
		"jobs":     v("list jobs", c.jobs),
		"apply":    v("create or replace clusters and commands from YAML (-f FILE)", c.apply),
		"clusters": v("list clusters; set-status NAME STATUS; delete NAME", c.clusters),
		"commands": v("list commands; set-status NAME STATUS; delete NAME", c.commands),
		"workers":  v("list live workers", c.workers),
		"pools":    v("list autoscaled pools and their decisions; NAME shows one", c.pools),
	}
}
