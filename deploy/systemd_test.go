package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// unitFile is a parsed systemd unit: section → key → values (a key may repeat).
type unitFile map[string]map[string][]string

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseUnit reads a systemd unit file: [Section] headers, Key=Value lines,
// comments with # or ;, and lines continued with a trailing backslash.
func parseUnit(b []byte) (unitFile, error) {
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	n, pending := 0, ""
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if pending != "" {
			l, pending = pending+" "+l, ""
		}
		if strings.HasSuffix(l, "\\") {
			pending = strings.TrimSuffix(l, "\\")
			continue
		}
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is no Key=Value in a section", n, l)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u, nil
}

// systemdSpan reads a systemd time span: "90" (seconds), "30s", "55m", "1h".
func systemdSpan(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// parseEnvFile reads KEY=VALUE lines (systemd's EnvironmentFile).
func parseEnvFile(b []byte) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

// systemdUnits is each unit with the role it must run.
var systemdUnits = map[string]string{
	"jinn-nats@.service":     "nats",
	"jinn-intake.service":    "intake",
	"jinn-scheduler.service": "scheduler",
	"jinn-worker.service":    "worker",
}

func TestSystemdUnits(t *testing.T) {
	env := parseEnvFile(readFile(t, "deploy/systemd/jinn.env"))
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "deploy/systemd/*.service"))
	if len(files) != len(systemdUnits) {
		t.Errorf("deploy/systemd has %d units, want %d", len(files), len(systemdUnits))
	}
	// jinn.env serves every role on a machine: each variable is one some role reads.
	checkEnvAny(t, "deploy/systemd/jinn.env", env, "nats", "intake", "scheduler", "worker")
	cmds := map[string]command{}
	for name, role := range systemdUnits {
		where := "deploy/systemd/" + name
		u, err := parseUnit(readFile(t, where))
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		s := u["Service"]
		exec := strings.Fields(u.get("Service", "ExecStart"))
		if len(exec) < 2 || exec[0] != "/usr/local/bin/jinn" {
			t.Errorf("%s: ExecStart %q should run /usr/local/bin/jinn", where, u.get("Service", "ExecStart"))
			continue
		}
		c := parseCommand(t, where, exec[1:])
		if c.role != role {
			t.Errorf("%s runs jinn %s, want jinn %s", where, c.role, role)
		}
		cmds[name] = c
		for k, want := range map[string]string{
			"EnvironmentFile": "/etc/jinn/jinn.env",
			"KillSignal":      "SIGTERM",
			"User":            "jinn",
		} {
			if got := u.get("Service", k); got != want {
				t.Errorf("%s: %s=%q, want %q", where, k, got, want)
			}
		}
		if _, err := systemdSpan(u.get("Service", "TimeoutStopSec")); err != nil {
			t.Errorf("%s: TimeoutStopSec %q: %v", where, u.get("Service", "TimeoutStopSec"), err)
		}
		if len(s["Restart"]) == 0 || u.get("Install", "WantedBy") != "multi-user.target" {
			t.Errorf("%s: needs Restart= and WantedBy=multi-user.target", where)
		}
	}
	if t.Failed() {
		return
	}

	// The worker drains on stop, and only jinn gets the signal.
	w, _ := parseUnit(readFile(t, "deploy/systemd/jinn-worker.service"))
	if w.get("Service", "KillMode") != "mixed" {
		t.Errorf("jinn-worker: KillMode=%q; the default sends SIGTERM to the jobs too, killing what the drain should finish", w.get("Service", "KillMode"))
	}
	if w.get("Service", "Restart") == "always" {
		t.Errorf("jinn-worker: Restart=always restarts a worker the autoscaler drained")
	}
	if w.get("Service", "Delegate") != "yes" {
		t.Errorf("jinn-worker: Delegate=yes is needed for the per-job cgroups")
	}
	stop, _ := systemdSpan(w.get("Service", "TimeoutStopSec"))
	drain, err := time.ParseDuration(cmds["jinn-worker.service"].flags["drain-timeout"])
	if err != nil || drain <= 0 || drain >= stop {
		t.Errorf("jinn-worker: --drain-timeout %q should be set and shorter than TimeoutStopSec %v", cmds["jinn-worker.service"].flags["drain-timeout"], stop)
	}

	// NATS: the unit's flags agree with the three configurations, and the
	// clients of jinn.env name the servers.
	n := cmds["jinn-nats@.service"]
	if n.flags["config"] != "/etc/jinn/nats-%i.conf" {
		t.Fatalf("jinn-nats@: --config %q, want /etc/jinn/nats-%%i.conf", n.flags["config"])
	}
	servers := checkNATSConfigs(t)
	clientHosts := map[string]bool{}
	for _, o := range servers {
		if got := net.JoinHostPort(o.Host, strconv.Itoa(o.Port)); got != n.flags["listen"] {
			t.Errorf("nats %s listens on %s, jinn-nats@ says --listen %s", o.ServerName, got, n.flags["listen"])
		}
		if o.StoreDir != n.flags["store-dir"] {
			t.Errorf("nats %s stores in %s, jinn-nats@ says --store-dir %s", o.ServerName, o.StoreDir, n.flags["store-dir"])
		}
		for _, r := range o.Routes {
			clientHosts[r.Hostname()] = true
		}
	}
	for _, raw := range splitList(env["JINN_NATS"]) {
		u, err := url.Parse(raw)
		if err != nil || !clientHosts[u.Hostname()] || u.Port() != strconv.Itoa(servers[0].Port) {
			t.Errorf("jinn.env JINN_NATS %s is not a client address of the NATS servers", raw)
		}
		delete(clientHosts, u.Hostname())
	}
	if len(clientHosts) != 0 {
		t.Errorf("jinn.env JINN_NATS leaves out %v", sortedKeys(clientHosts))
	}
	if env["JINN_REPLICAS"] != strconv.Itoa(len(servers)) {
		t.Errorf("jinn.env JINN_REPLICAS=%s, want %d", env["JINN_REPLICAS"], len(servers))
	}
	ru, err := url.Parse(env["JINN_REDIS"])
	if err != nil {
		t.Fatalf("jinn.env JINN_REDIS: %v", err)
	}
	pass, _ := ru.User.Password()
	if acl := parseACL(t, readFile(t, "deploy/redis/users.acl"))[ru.User.Username()]; !acl.on || !acl.passwords[pass] {
		t.Errorf("jinn.env: Redis user %s with that password is not in users.acl", ru.User.Username())
	}
	if ru.Port() != parseRedisConf(t, readFile(t, "deploy/redis/redis.conf"))["port"] {
		t.Errorf("jinn.env: Redis port %s is not redis.conf's", ru.Port())
	}
}

// checkNATSConfigs parses deploy/nats/nats-{1,2,3}.conf with nats-server's
// own parser and checks that they make one cluster.
func checkNATSConfigs(t *testing.T) []*server.Options {
	t.Helper()
	var servers []*server.Options
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "deploy/nats/*.conf"))
	if len(files) != 3 {
		t.Fatalf("deploy/nats has %d configurations, want 3", len(files))
	}
	names := map[string]bool{}
	for i := 1; i <= 3; i++ {
		f := filepath.Join(repoRoot(t), fmt.Sprintf("deploy/nats/nats-%d.conf", i))
		o, err := server.ProcessConfigFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		where := filepath.Base(f)
		if o.ServerName != fmt.Sprintf("nats-%d", i) || names[o.ServerName] {
			t.Errorf("%s: server_name %q, want nats-%d", where, o.ServerName, i)
		}
		names[o.ServerName] = true
		if !o.JetStream || o.StoreDir == "" {
			t.Errorf("%s: JetStream is not on with a store_dir", where)
		}
		if o.SyncInterval == 0 && !o.SyncAlways {
			t.Errorf("%s: set jetstream.sync_interval explicitly: the fsync policy is a documented choice", where)
		}
		if o.MaxPayload < 2<<20 {
			t.Errorf("%s: max_payload %d is below the 2 MiB jinn's streams accept", where, o.MaxPayload)
		}
		if o.HTTPPort == 0 {
			t.Errorf("%s: no monitoring port: /healthz is what to check and alert on", where)
		}
		if o.Cluster.Name != "jinn" || o.Cluster.Port == 0 || len(o.Routes) != 3 {
			t.Errorf("%s: cluster %q on port %d with %d routes; want cluster jinn with routes to all 3", where, o.Cluster.Name, o.Cluster.Port, len(o.Routes))
		}
		for _, r := range o.Routes {
			if r.Port() != strconv.Itoa(o.Cluster.Port) {
				t.Errorf("%s: route %s is not on the cluster port %d", where, r, o.Cluster.Port)
			}
		}
		servers = append(servers, o)
	}
	// Server i is reachable under the name its peers route to.
	for i, o := range servers {
		want := fmt.Sprintf("nats-%d.", i+1)
		found := false
		for _, r := range servers[0].Routes {
			found = found || strings.HasPrefix(r.Hostname(), want)
		}
		if !found {
			t.Errorf("no route names %s (%s*)", o.ServerName, want)
		}
	}
	return servers
}
