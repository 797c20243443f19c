package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/scheduler"
)

// webhookList is the repeatable --webhook flag.
type webhookList []string

func (l *webhookList) String() string { return strings.Join(*l, ",") }

func (l *webhookList) Set(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--webhook %q: give an http:// or https:// URL", v)
	}
	*l = append(*l, v)
	return nil
}

// notifyFlags are the webhook notifier's flags (scheduler, up); the
// returned function reads them after parsing.
func notifyFlags(fs *flag.FlagSet) func() (scheduler.NotifyConfig, error) {
	hooks := &webhookList{}
	env := envString("JINN_WEBHOOKS", "")
	fs.Var(hooks, "webhook", "global webhook `URL` that gets every job's final status as a signed JSON POST; repeatable (env JINN_WEBHOOKS, comma separated)")
	secret := fs.String("webhook-secret", envString("JINN_WEBHOOK_SECRET", ""), "`secret` of the HMAC-SHA256 signature (X-Jinn-Signature) of every webhook POST, global and per job (env JINN_WEBHOOK_SECRET)")
	all := fs.Bool("webhook-all", os.Getenv("JINN_WEBHOOK_ALL") == "true", "send every status change to the global webhooks, not only final ones (env JINN_WEBHOOK_ALL=true)")
	tries := fs.Int("webhook-tries", envInt("JINN_WEBHOOK_TRIES", 8), "tries of one webhook delivery before it is dropped; the delay doubles from 1s to 5m (env JINN_WEBHOOK_TRIES)")
	return func() (scheduler.NotifyConfig, error) {
		if len(*hooks) == 0 && env != "" {
			for _, v := range strings.Split(env, ",") {
				if v = strings.TrimSpace(v); v != "" {
					if err := hooks.Set(v); err != nil {
						return scheduler.NotifyConfig{}, fmt.Errorf("JINN_WEBHOOKS: %w", err)
					}
				}
			}
		}
		if *tries < 1 {
			return scheduler.NotifyConfig{}, fmt.Errorf("--webhook-tries %d: give 1 or more", *tries)
		}
		return scheduler.NotifyConfig{Webhooks: *hooks, Secret: *secret, All: *all, MaxTries: *tries}, nil
	}
}

// eventsMaxAgeFlag is how long JINN_EVENTS keeps events. Every role
// declares the stream, so every role has it, and they should agree.
func eventsMaxAgeFlag(fs *flag.FlagSet, d *time.Duration) {
	fs.DurationVar(d, "events-max-age", envDuration("JINN_EVENTS_MAX_AGE", 24*time.Hour), "how long the stream JINN_EVENTS keeps job status events; give every role the same (env JINN_EVENTS_MAX_AGE)")
}

// metricsListenFlag is --metrics-listen of the roles without an HTTP
// listener of their own (scheduler, worker).
func metricsListenFlag(fs *flag.FlagSet) *string {
	return fs.String("metrics-listen", envString("JINN_METRICS_LISTEN", ""), "`address` of a Prometheus /metrics endpoint, e.g. 127.0.0.1:9464; empty: none (env JINN_METRICS_LISTEN)")
}

// serveMetrics starts the /metrics endpoint when addr is set; the returned
// function stops it.
func serveMetrics(addr string, log hclog.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	stop, bound, err := metrics.Serve(addr, func(err error) { log.Error("metrics endpoint stopped", "error", err) })
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	log.Info("metrics ready", "url", "http://"+bound+"/metrics")
	return stop, nil
}
