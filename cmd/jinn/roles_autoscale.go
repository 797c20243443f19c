package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/scheduler"
	"github.com/jinn-fleet/jinn/scheduler/scale"
)

// scaleFlags are the autoscaler's settings: the policy (up and scheduler)
// and, for the scheduler, the pool and its provider.
type scaleFlags struct {
	on       bool
	policy   job.ScalePolicy
	interval time.Duration
	// scheduler only
	pool, provider, asg, execCmd, clusters, asgEndpoint string
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

// addScaleFlags adds the autoscaler's flags; scheduler adds those that name
// the pool and its provider.
func addScaleFlags(fs *flag.FlagSet, scheduler bool) *scaleFlags {
	s := &scaleFlags{}
	p := &s.policy
	what := "run the workers as child processes whose number follows the memory load (env JINN_AUTOSCALE=true)"
	if scheduler {
		what = "size a worker pool by memory load as the leader, through --scale-provider (env JINN_AUTOSCALE=true)"
	}
	fs.BoolVar(&s.on, "autoscale", os.Getenv("JINN_AUTOSCALE") == "true", what)
	fs.IntVar(&p.Min, "min-workers", envInt("JINN_MIN_WORKERS", 1), "autoscale: fewest workers (env JINN_MIN_WORKERS)")
	fs.IntVar(&p.Max, "max-workers", envInt("JINN_MAX_WORKERS", 4), "autoscale: most workers (env JINN_MAX_WORKERS)")
	fs.Float64Var(&p.High, "scale-high", envFloat("JINN_SCALE_HIGH", 0.6), "autoscale: grow when used/allowance stays above this `fraction` (env JINN_SCALE_HIGH)")
	fs.Float64Var(&p.Low, "scale-low", envFloat("JINN_SCALE_LOW", 0.3), "autoscale: shrink when used/allowance stays below this `fraction` with nothing waiting (env JINN_SCALE_LOW)")
	fs.DurationVar(&p.Window, "scale-window", envDuration("JINN_SCALE_WINDOW", time.Minute), "autoscale: how long pressure lasts before the pool grows (env JINN_SCALE_WINDOW)")
	fs.DurationVar(&p.DownWindow, "scale-down-window", envDuration("JINN_SCALE_DOWN_WINDOW", 10*time.Minute), "autoscale: how long the pool is idle before it shrinks (env JINN_SCALE_DOWN_WINDOW)")
	fs.DurationVar(&p.UpCooldown, "scale-up-cooldown", envDuration("JINN_SCALE_UP_COOLDOWN", 2*time.Minute), "autoscale: least time between two scale-ups (env JINN_SCALE_UP_COOLDOWN)")
	fs.DurationVar(&p.DownCooldown, "scale-down-cooldown", envDuration("JINN_SCALE_DOWN_COOLDOWN", 5*time.Minute), "autoscale: least time between any scaling and a scale-down (env JINN_SCALE_DOWN_COOLDOWN)")
	fs.DurationVar(&p.WarmUp, "scale-warmup", envDuration("JINN_SCALE_WARMUP", time.Minute), "autoscale: a new worker's load does not count toward an idle pool for this long (env JINN_SCALE_WARMUP)")
	fs.IntVar(&p.Step, "scale-step", envInt("JINN_SCALE_STEP", 1), "autoscale: workers one scale-up adds (waiting jobs that fit nowhere may add more) (env JINN_SCALE_STEP)")
	fs.DurationVar(&s.interval, "scale-interval", envDuration("JINN_SCALE_INTERVAL", 10*time.Second), "autoscale: time between two decisions (env JINN_SCALE_INTERVAL)")
	if scheduler {
		fs.StringVar(&s.pool, "scale-pool", envString("JINN_SCALE_POOL", "default"), "autoscale: the `pool` to size (env JINN_SCALE_POOL)")
		fs.StringVar(&s.provider, "scale-provider", envString("JINN_SCALE_PROVIDER", ""), "autoscale: aws (an EC2 Auto Scaling group) or exec (--scale-exec) (env JINN_SCALE_PROVIDER)")
		fs.StringVar(&s.asg, "asg", envString("JINN_SCALE_ASG", ""), "autoscale with aws: the Auto Scaling `group` of the pool, or POOL=GROUP (env JINN_SCALE_ASG)")
		fs.StringVar(&s.asgEndpoint, "asg-endpoint", envString("JINN_ASG_ENDPOINT", ""), "autoscale with aws: Auto Scaling API `URL` instead of AWS's (env JINN_ASG_ENDPOINT)")
		fs.StringVar(&s.execCmd, "scale-exec", envString("JINN_SCALE_EXEC", ""), "autoscale with exec: `command` run with sh -c; {pool}, {desired}, {action} (set or remove) and {worker} are replaced, e.g. '/usr/local/bin/scale.sh {pool} {desired}' (env JINN_SCALE_EXEC)")
		fs.StringVar(&s.clusters, "scale-clusters", envString("JINN_SCALE_CLUSTERS", ""), "autoscale: clusters whose waiting jobs count for the pool even when it has no worker, comma separated (env JINN_SCALE_CLUSTERS)")
	}
	return s
}

// upConfig is the autoscaling of jinn up: local workers running this binary.
func (s *scaleFlags) upConfig(allowance int, logLevel string) (*fleet.Autoscale, error) {
	if !s.on {
		return nil, nil
	}
	if err := s.policy.Validate(); err != nil {
		return nil, fmt.Errorf("--autoscale: %w", err)
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("--autoscale needs the path of the jinn binary to start workers: %w", err)
	}
	return &fleet.Autoscale{Binary: bin, Policy: s.policy, Interval: s.interval, Allowance: allowance, LogLevel: logLevel}, nil
}

// duties are the scheduler's autoscaler duty, when --autoscale is on.
func (s *scaleFlags) duties(ctx context.Context, c *fleet.Conn, log hclog.Logger) ([]scheduler.Duty, error) {
	if !s.on {
		return nil, nil
	}
	if err := s.policy.Validate(); err != nil {
		return nil, fmt.Errorf("--autoscale: %w", err)
	}
	var prov scale.Provider
	var err error
	switch s.provider {
	case "aws":
		prov, err = s.awsProvider(ctx, log)
	case "exec":
		prov, err = scale.NewExec(scale.ExecConfig{Command: s.execCmd, Log: log})
	case "":
		return nil, errors.New("--autoscale: name a --scale-provider: aws or exec (jinn up --autoscale runs local workers)")
	default:
		return nil, fmt.Errorf("--scale-provider %q: want aws or exec", s.provider)
	}
	if err != nil {
		return nil, err
	}
	as, err := scheduler.NewAutoscaler(scheduler.AutoscaleConfig{
		Pools:    []scheduler.AutoscalePool{{Name: s.pool, Policy: s.policy, Provider: prov, Clusters: splitTags(s.clusters)}},
		Interval: s.interval,
	}, c.Broker, c.Store, log)
	if err != nil {
		return nil, err
	}
	return []scheduler.Duty{as}, nil
}

func (s *scaleFlags) awsProvider(ctx context.Context, log hclog.Logger) (scale.Provider, error) {
	groups := map[string]string{}
	for _, g := range splitTags(s.asg) {
		pool, group, ok := strings.Cut(g, "=")
		if !ok {
			pool, group = s.pool, g
		}
		groups[pool] = group
	}
	if groups[s.pool] == "" {
		return nil, fmt.Errorf("--scale-provider aws: name the Auto Scaling group of pool %s with --asg GROUP", s.pool)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws credentials and region (AWS_REGION, AWS_PROFILE, an instance role): %w", err)
	}
	client := autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) {
		if s.asgEndpoint != "" {
			o.BaseEndpoint = aws.String(s.asgEndpoint)
		}
	})
	return scale.NewAWS(scale.AWSConfig{Groups: groups, Client: client, Log: log})
}
