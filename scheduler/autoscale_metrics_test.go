package scheduler_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jinn-fleet/jinn/internal/metrics"
	"github.com/jinn-fleet/jinn/scheduler/scale"
)

// The autoscaler's rounds set the pool gauges and count its decisions.
func TestAutoscalerMetrics(t *testing.T) {
	f := newScaleFixture(t)
	up := testutil.ToFloat64(metrics.ScaleDecisions.WithLabelValues("default", "up"))
	f.provider.instances = []scale.Instance{{ID: "w1", State: "running", Live: true}}
	f.worker("w1", 900)
	f.queue("j1", 800)

	f.mustTick()
	if size, desired := testutil.ToFloat64(metrics.PoolSize.WithLabelValues("default")), testutil.ToFloat64(metrics.PoolDesired.WithLabelValues("default")); size != 1 || desired != 1 {
		t.Fatalf("first round: size %v desired %v", size, desired)
	}
	f.clock.Advance(time.Minute)
	f.mustTick() // a whole window of pressure: grow
	if desired := testutil.ToFloat64(metrics.PoolDesired.WithLabelValues("default")); desired != 2 {
		t.Fatalf("desired %v after growing, want 2", desired)
	}
	if got := testutil.ToFloat64(metrics.ScaleDecisions.WithLabelValues("default", "up")) - up; got != 1 {
		t.Fatalf("up decisions moved by %v, want 1", got)
	}
}
