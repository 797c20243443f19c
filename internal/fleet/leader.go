package fleet

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/scheduler"
)

// StartLeader makes this process a candidate for the fleet's leadership. The
// leader runs the duties (the reaper, and more, such as the autoscaler); its token is recorded in Redis when it
// is elected, so that writes of an older leader are refused from then on.
func StartLeader(ctx context.Context, c *Conn, adm *scheduler.Admitter, lc scheduler.LeaderConfig, rc scheduler.ReaperConfig, log hclog.Logger, more ...scheduler.Duty) (*scheduler.Leader, error) {
	if lc.TTL <= 0 {
		lc.TTL = DefaultLeaderTTL
	}
	kv, err := c.Broker.LeaderKV(ctx, lc.TTL)
	if err != nil {
		return nil, err
	}
	lc.OnElect = c.Store.Lead
	reaper := scheduler.NewReaper(rc, c.Store, c.Broker, c.Archive, adm, log)
	l, err := scheduler.NewLeader(kv, lc, append([]scheduler.Duty{reaper}, more...), log)
	if err != nil {
		return nil, err
	}
	if err := l.Start(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// DefaultLeaderTTL is the leadership's TTL unless configured.
const DefaultLeaderTTL = scheduler.DefaultLeaderTTL
