package scale

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/hashicorp/go-hclog"
)

// AutoScalingAPI is the part of the EC2 Auto Scaling client the aws provider
// calls; *autoscaling.Client has it.
type AutoScalingAPI interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	SetDesiredCapacity(context.Context, *autoscaling.SetDesiredCapacityInput, ...func(*autoscaling.Options)) (*autoscaling.SetDesiredCapacityOutput, error)
	TerminateInstanceInAutoScalingGroup(context.Context, *autoscaling.TerminateInstanceInAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error)
	SetInstanceProtection(context.Context, *autoscaling.SetInstanceProtectionInput, ...func(*autoscaling.Options)) (*autoscaling.SetInstanceProtectionOutput, error)
}

// AWSConfig of the aws provider.
type AWSConfig struct {
	// Groups maps each pool to its Auto Scaling group. Required.
	Groups map[string]string
	// Client calls EC2 Auto Scaling. Required (cmd/jinn builds one from the
	// default credential chain).
	Client AutoScalingAPI
	Log    hclog.Logger
}

// AWS sizes each pool as an EC2 Auto Scaling group. Each instance must run
// its worker with the instance id as --id (see deploy/aws), so that the
// worker the autoscaler drained is the instance it terminates.
//
// It raises a group with SetDesiredCapacity, and never lowers it that way
// (the group would then pick a victim itself); a drained worker's instance is
// terminated with TerminateInstanceInAutoScalingGroup, which lowers the
// desired capacity by one. While a worker runs jobs its instance is protected
// from scale-in, so neither a scheduled action nor a person lowering the
// group's size can take it.
type AWS struct {
	cfg AWSConfig
	log hclog.Logger

	mu        sync.Mutex
	protected map[string]map[string]bool // pool → instance → protected, as last described
}

// ProtectBatch is the most instances one SetInstanceProtection call names
// (the API's limit).
const ProtectBatch = 50

// NewAWS returns an aws provider.
func NewAWS(cfg AWSConfig) (*AWS, error) {
	if len(cfg.Groups) == 0 {
		return nil, errors.New("aws provider: name the Auto Scaling group of each pool")
	}
	if cfg.Client == nil {
		return nil, errors.New("aws provider: an Auto Scaling client is required")
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	return &AWS{cfg: cfg, log: cfg.Log.Named("scale-aws"), protected: map[string]map[string]bool{}}, nil
}

// Name is "aws".
func (a *AWS) Name() string { return "aws" }

func (a *AWS) group(pool string) (string, error) {
	g, ok := a.cfg.Groups[pool]
	if !ok {
		return "", fmt.Errorf("aws provider: pool %s has no Auto Scaling group; add one with --asg %s=GROUP", pool, pool)
	}
	return g, nil
}

func (a *AWS) describe(ctx context.Context, pool string) (*types.AutoScalingGroup, error) {
	name, err := a.group(pool)
	if err != nil {
		return nil, err
	}
	out, err := a.cfg.Client.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		return nil, fmt.Errorf("describe Auto Scaling group %s of pool %s: %w", name, pool, err)
	}
	for i := range out.AutoScalingGroups {
		if aws.ToString(out.AutoScalingGroups[i].AutoScalingGroupName) == name {
			return &out.AutoScalingGroups[i], nil
		}
	}
	return nil, fmt.Errorf("Auto Scaling group %s of pool %s does not exist: create it (deploy/aws) or fix --asg", name, pool)
}

// SetDesired raises the group's desired capacity to n; it never lowers it.
func (a *AWS) SetDesired(ctx context.Context, pool string, n int) error {
	g, err := a.describe(ctx, pool)
	if err != nil {
		return err
	}
	cur, top := int(aws.ToInt32(g.DesiredCapacity)), int(aws.ToInt32(g.MaxSize))
	if n <= cur {
		return nil
	}
	var capped error
	if n > top {
		capped = fmt.Errorf("pool %s wants %d workers but Auto Scaling group %s allows at most %d: raise its MaxSize or lower --max-workers", pool, n, aws.ToString(g.AutoScalingGroupName), top)
		n = top
		if n <= cur {
			return capped
		}
	}
	_, err = a.cfg.Client.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: g.AutoScalingGroupName,
		DesiredCapacity:      aws.Int32(int32(n)),
		HonorCooldown:        aws.Bool(false), // jinn keeps its own cooldowns
	})
	if err != nil {
		return fmt.Errorf("set desired capacity of %s to %d: %w", aws.ToString(g.AutoScalingGroupName), n, err)
	}
	a.log.Info("raised the desired capacity", "pool", pool, "group", aws.ToString(g.AutoScalingGroupName), "from", cur, "to", n)
	return capped
}

// Remove terminates a drained worker's instance and lowers the desired
// capacity by one. An instance no longer in the group (or already on its way
// out) is left alone.
func (a *AWS) Remove(ctx context.Context, pool, worker string) error {
	g, err := a.describe(ctx, pool)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(g.Instances, func(in types.Instance) bool { return aws.ToString(in.InstanceId) == worker })
	if i < 0 || !live(g.Instances[i].LifecycleState) {
		return nil
	}
	_, err = a.cfg.Client.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId:                     aws.String(worker),
		ShouldDecrementDesiredCapacity: aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("terminate instance %s of group %s: %w", worker, aws.ToString(g.AutoScalingGroupName), err)
	}
	a.log.Info("terminated a drained worker's instance", "pool", pool, "instance", worker)
	return nil
}

// List returns the group's instances.
func (a *AWS) List(ctx context.Context, pool string) ([]Instance, error) {
	g, err := a.describe(ctx, pool)
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, len(g.Instances))
	prot := map[string]bool{}
	for _, in := range g.Instances {
		id := aws.ToString(in.InstanceId)
		p := aws.ToBool(in.ProtectedFromScaleIn)
		prot[id] = p
		out = append(out, Instance{ID: id, State: string(in.LifecycleState), Live: live(in.LifecycleState), Protected: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	a.mu.Lock()
	a.protected[pool] = prot
	a.mu.Unlock()
	return out, nil
}

// Protect sets scale-in protection where it differs from what the last List
// saw, in batches of ProtectBatch instances.
func (a *AWS) Protect(ctx context.Context, pool string, busy map[string]bool) error {
	name, err := a.group(pool)
	if err != nil {
		return err
	}
	a.mu.Lock()
	_, known := a.protected[pool]
	a.mu.Unlock()
	if !known {
		if _, err := a.List(ctx, pool); err != nil {
			return err
		}
	}
	a.mu.Lock()
	var on, off []string
	seen := a.protected[pool]
	for id, b := range busy {
		p, ok := seen[id]
		switch {
		case !ok: // not (yet) in the group
		case b && !p:
			on = append(on, id)
		case !b && p:
			off = append(off, id)
		}
	}
	a.mu.Unlock()
	sort.Strings(on)
	sort.Strings(off)
	for _, set := range []struct {
		ids  []string
		prot bool
	}{{on, true}, {off, false}} {
		for ids := range slices.Chunk(set.ids, ProtectBatch) {
			_, err := a.cfg.Client.SetInstanceProtection(ctx, &autoscaling.SetInstanceProtectionInput{
				AutoScalingGroupName: aws.String(name), InstanceIds: ids, ProtectedFromScaleIn: aws.Bool(set.prot),
			})
			if err != nil {
				return fmt.Errorf("set scale-in protection %t of %d instances of %s: %w", set.prot, len(ids), name, err)
			}
			a.mu.Lock()
			for _, id := range ids {
				a.protected[pool][id] = set.prot
			}
			a.mu.Unlock()
		}
	}
	return nil
}

// live says whether an instance in this lifecycle state counts toward the
// pool: on its way in or in service.
func live(s types.LifecycleState) bool {
	switch s {
	case types.LifecycleStatePending, types.LifecycleStatePendingWait, types.LifecycleStatePendingProceed, types.LifecycleStateInService:
		return true
	}
	return false
}
