package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/broker"

	"github.com/jinn-fleet/jinn/client"
)

// ClusterConfig lays out a fleet of separate processes on loopback: a
// 3-server NATS cluster, a redis-server, intakes, schedulers and workers,
// all from one jinn binary. It is the topology of docker-compose.yml without
// a container engine.
type ClusterConfig struct {
	Binary     string // the jinn binary; default os.Executable()
	RedisBin   string // default redis-server on PATH
	Dir        string // data and logs
	BasePort   int    // ports BasePort.. are used; default 24000
	Intakes    int    // default 2
	Schedulers int    // default 2
	Workers    int    // default 3
	// WorkerMemory is each worker's allowance in MiB. Default 4096.
	WorkerMemory int
	AckWait      time.Duration // default 5s: a dead worker's job returns this soon
	Heartbeat    time.Duration // default 500ms
	Log          hclog.Logger
}

// Cluster is a running topology. Its processes can be killed, stopped and
// restarted by name ("nats-2", "redis", "scheduler-1", "worker-3", ...).
type Cluster struct {
	cfg     ClusterConfig
	mu      sync.Mutex
	procs   map[string]*proc
	Intakes []string // intake URLs
	NATSURL string   // all three servers, comma separated
}

type proc struct {
	name string
	args []string
	bin  string
	addr string // a TCP address that answers once it is ready, if any
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *ClusterConfig) defaults() error {
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		c.Binary = exe
	}
	if c.RedisBin == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return errors.New("the cluster topology needs redis-server on PATH (apt-get install redis-server)")
		}
		c.RedisBin = p
	}
	if c.Dir == "" {
		return errors.New("cluster: a directory is required")
	}
	if c.BasePort == 0 {
		c.BasePort = 24000
	}
	if c.Intakes == 0 {
		c.Intakes = 2
	}
	if c.Schedulers == 0 {
		c.Schedulers = 2
	}
	if c.Workers == 0 {
		c.Workers = 3
	}
	if c.WorkerMemory == 0 {
		c.WorkerMemory = 4096
	}
	if c.AckWait == 0 {
		c.AckWait = 5 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 500 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = hclog.NewNullLogger()
	}
	return nil
}

// StartCluster starts every process and waits until each answers.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, procs: map[string]*proc{}}
	port := cfg.BasePort
	next := func() int { port++; return port }
	var natsURLs, routes []string
	natsPorts := [3][2]int{}
	for i := range natsPorts {
		natsPorts[i] = [2]int{next(), next()}
		natsURLs = append(natsURLs, fmt.Sprintf("nats://127.0.0.1:%d", natsPorts[i][0]))
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", natsPorts[i][1]))
	}
	c.NATSURL = strings.Join(natsURLs, ",")
	for i, p := range natsPorts {
		name := fmt.Sprintf("nats-%d", i+1)
		c.add(name, cfg.Binary, fmt.Sprintf("127.0.0.1:%d", p[0]), "nats",
			"--listen", fmt.Sprintf("127.0.0.1:%d", p[0]), "--name", name,
			"--store-dir", filepath.Join(cfg.Dir, name), "--cluster-name", "jinn",
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", p[1]), "--routes", strings.Join(routes, ","),
			"--log-level", "warn")
	}
	redisPort := next()
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort)
	// No persistence: a restarted Redis comes back empty, the harshest case
	// for the live state jinn keeps there.
	c.add("redis", cfg.RedisBin, fmt.Sprintf("127.0.0.1:%d", redisPort), "--port", strconv.Itoa(redisPort),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", cfg.Dir)
	common := []string{"--nats", c.NATSURL, "--redis", redisURL, "--replicas", "3",
		"--archive", filepath.Join(cfg.Dir, "archive"), "--ack-wait", cfg.AckWait.String(), "--log-level", "info"}
	for i := 1; i <= cfg.Schedulers; i++ {
		name := fmt.Sprintf("scheduler-%d", i)
		c.add(name, cfg.Binary, "", append([]string{"scheduler", "--leader-id", name, "--leader-ttl", "3s"}, common...)...)
	}
	for i := 1; i <= cfg.Intakes; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", next())
		c.Intakes = append(c.Intakes, "http://"+addr)
		c.add(fmt.Sprintf("intake-%d", i), cfg.Binary, addr, append([]string{"intake", "--listen", addr}, common...)...)
	}
	for i := 1; i <= cfg.Workers; i++ {
		id := fmt.Sprintf("worker-%d", i)
		c.add(id, cfg.Binary, "", append([]string{"worker", "--id", id, "--data-dir", filepath.Join(cfg.Dir, id),
			"--job-memory", strconv.Itoa(cfg.WorkerMemory), "--heartbeat", cfg.Heartbeat.String(), "--kill-grace", "2s"}, common...)...)
	}
	order := []string{"nats-1", "nats-2", "nats-3", "redis"}
	for _, n := range c.names() {
		if !strings.HasPrefix(n, "nats-") && n != "redis" {
			order = append(order, n)
		}
	}
	// The NATS servers need each other to form the cluster: start them all,
	// then wait for each.
	for _, n := range order {
		if err := c.Start(n); err != nil {
			c.Stop()
			return nil, err
		}
		if strings.HasPrefix(n, "nats-") {
			continue
		}
		if err := c.waitReady(ctx, n); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.waitConfigured(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	for _, n := range c.names() {
		if exited(c.procs[n]) {
			c.Stop()
			return nil, fmt.Errorf("cluster: %s exited at start (see %s)", n, filepath.Join(cfg.Dir, "logs", n+".log"))
		}
	}
	return c, nil
}

// waitConfigured waits until every intake sees the default cluster and
// commands, which a scheduler creates at its first start.
func (c *Cluster) waitConfigured(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range c.Intakes {
		api := client.New(u)
		for {
			cmds, err := api.Commands(ctx)
			if err == nil && len(cmds) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("cluster: intake %s has no commands after 30s (err %v); see the scheduler logs", u, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func (c *Cluster) add(name, bin, addr string, args ...string) {
	c.procs[name] = &proc{name: name, bin: bin, addr: addr, args: args}
}

// names lists the processes in name order.
func (c *Cluster) names() []string {
	var out []string
	for n := range c.procs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Names lists the processes of a kind ("worker", "scheduler", "nats", ...).
func (c *Cluster) Names(kind string) []string {
	var out []string
	for _, n := range c.names() {
		if strings.HasPrefix(n, kind) {
			out = append(out, n)
		}
	}
	return out
}

// Start starts (or restarts) a process by name.
func (c *Cluster) Start(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[name]
	if p == nil {
		return fmt.Errorf("cluster: no process %s", name)
	}
	if p.cmd != nil && !exited(p) {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(c.cfg.Dir, "logs", name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cluster: start %s: %w", name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(p.done)
	c.cfg.Log.Debug("started", "process", name, "pid", cmd.Process.Pid)
	return nil
}

func exited(p *proc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady waits until a process's address accepts connections.
func (c *Cluster) waitReady(ctx context.Context, name string) error {
	p := c.procs[name]
	if p.addr == "" {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster: %s not answering on %s (see %s)", name, p.addr, filepath.Join(c.cfg.Dir, "logs", name+".log"))
		}
		select {
		case <-p.done:
			return fmt.Errorf("cluster: %s exited at start (see %s)", name, filepath.Join(c.cfg.Dir, "logs", name+".log"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Leader returns the name of the scheduler that leads now, as the
// jinn_leader bucket says.
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	nc, err := nats.Connect(c.NATSURL)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	kv, err := js.KeyValue(ctx, broker.LeaderBucket)
	if err != nil {
		return "", fmt.Errorf("leader bucket: %w", err)
	}
	e, err := kv.Get(ctx, "leader")
	if err != nil {
		return "", fmt.Errorf("no leader now: %w", err)
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil || c.procs[v.ID] == nil {
		return "", fmt.Errorf("leader entry %q names no process of the cluster", e.Value())
	}
	return v.ID, nil
}

// Signal sends sig to a process's group (SIGKILL, SIGSTOP, SIGCONT, SIGTERM).
func (c *Cluster) Signal(name string, sig syscall.Signal) error {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil || p.cmd == nil {
		return fmt.Errorf("cluster: %s is not running", name)
	}
	// The group: a worker's jobs run in groups of their own and die with it.
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Kill SIGKILLs a process and waits until it is gone.
func (c *Cluster) Kill(name string) error {
	if err := c.Signal(name, syscall.SIGKILL); err != nil {
		return err
	}
	<-c.procs[name].done
	return nil
}

// Restart starts a killed process again and waits until it answers.
func (c *Cluster) Restart(ctx context.Context, name string) error {
	if err := c.Start(name); err != nil {
		return err
	}
	return c.waitReady(ctx, name)
}

// Stop ends every process: SIGTERM, then SIGKILL after 10 s.
func (c *Cluster) Stop() {
	for _, n := range c.names() {
		p := c.procs[n]
		if p.cmd == nil || exited(p) {
			continue
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, n := range c.names() {
		p := c.procs[n]
		if p.cmd == nil {
			continue
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}
