package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"
	"github.com/jinn-fleet/jinn/broker/natsd"
	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/job"
)

func withNATS(url string, replicas int) option {
	return func(c *fleet.Config) { c.NATSURL, c.Replicas = url, replicas }
}

// freePorts finds n free loopback ports (for cluster routes, which must be
// known before the servers start).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		defer l.Close()
	}
	return ports
}

// natsCluster starts three embedded servers routed into one cluster, as
// three `jinn nats --cluster-name ... --routes ...` would, and returns once
// JetStream answers.
func natsCluster(t *testing.T) ([]*server.Server, []natsd.Config, string) {
	t.Helper()
	ports := freePorts(t, 3)
	log := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Off})
	servers := make([]*server.Server, 3)
	cfgs := make([]natsd.Config, 3)
	var urls []string
	for i := range servers {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(p))
			}
		}
		cfgs[i] = natsd.Config{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Name: fmt.Sprintf("n%d", i+1),
			ClusterName: "jinn-test", ClusterListen: "127.0.0.1:" + strconv.Itoa(ports[i]), Routes: routes}
		s, err := natsd.Start(cfgs[i], log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers[i] = s
		urls = append(urls, s.ClientURL())
	}
	url := strings.Join(urls, ",")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	waitFor(t, 20*time.Second, func() bool { // a meta leader is elected
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
	return servers, cfgs, url
}

// One NATS server of three is killed while jobs run and wait, more are
// submitted, then it is restarted and more again: every accepted job
// succeeds. The killed server is the leader of JINN_JOBS, the worst one to
// lose.
func TestNATSServerKilledLosesNothing(t *testing.T) {
	servers, cfgs, url := natsCluster(t)
	s := start(t, withNATS(url, 3), withWorkers(2), withAllowance(4*64))
	ctx := context.Background()
	info, err := s.Broker.JS.Stream(ctx, broker.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if r := info.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("JINN_JOBS has %d replicas; want 3", r)
	}

	var accepted []string
	submit := func(i int) {
		req := bash(fmt.Sprintf("sleep 0.2; echo %d", i))
		req.Memory = 64
		for try := 0; ; try++ {
			var j job.Job
			code := s.do("POST", "/api/v1/jobs", req, &j)
			if code == http.StatusAccepted {
				accepted = append(accepted, j.ID)
				return
			}
			// Not accepted: the API said to submit again (a new id).
			if code != http.StatusServiceUnavailable || try == 50 {
				t.Fatalf("submit %d: %d", i, code)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := range 12 {
		submit(i)
	}
	si, err := info.Info(ctx)
	if err != nil || si.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	killed := si.Cluster.Leader
	k := -1
	for i, srv := range servers {
		if srv.Name() == killed {
			k = i
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}
	t.Logf("killed %s, the leader of %s", killed, broker.JobsStream)
	for i := 12; i < 24; i++ {
		submit(i)
	}
	back, err := natsd.Start(cfgs[k], hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("restart %s: %v", killed, err)
	}
	t.Cleanup(func() { back.Shutdown(); back.WaitForShutdown() })
	for i := 24; i < 36; i++ {
		submit(i)
	}
	for _, id := range accepted {
		if done := s.wait(id, 30*time.Second); done.Status != job.Succeeded {
			t.Fatalf("job %s: %+v", id, done)
		}
	}
	si, err = info.Info(ctx)
	if err != nil || si.Cluster == nil || si.Cluster.Leader == killed || si.Cluster.Leader == "" {
		t.Fatalf("stream after the kill: %+v %v", si, err)
	}
}
