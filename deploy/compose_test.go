package deploy_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// loadCompose loads docker-compose.yml with the Compose specification's own
// loader: schema validation, interpolation (with the defaults the file
// gives), anchors and merge keys, and the consistency checks.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	path := filepath.Join(root, "docker-compose.yml")
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: content}},
		Environment: types.Mapping{}, // the file's own defaults, not this machine's
	}, func(o *loader.Options) { o.SetProjectName("jinn", true) })
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func composeEnv(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// healthPort is the port a bash /dev/tcp or HTTP health check probes.
var healthPortRe = regexp.MustCompile(`/dev/tcp/127\.0\.0\.1/(\d+)`)

func TestCompose(t *testing.T) {
	p := loadCompose(t)
	bin, _ := jinnBinary(t)
	_ = bin

	jinnImage := ""
	byRole := map[string][]string{}
	cmds := map[string]command{}
	envs := map[string]map[string]string{}
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		// Every service built from this repository runs the jinn image.
		if jinnImage == "" {
			jinnImage = s.Image
		}
		if s.Image != jinnImage {
			t.Errorf("service %s: image %s, want the one jinn image %s", name, s.Image, jinnImage)
		}
		if len(s.Entrypoint) > 0 {
			t.Errorf("service %s overrides the image's entrypoint", name)
		}
		where := "docker-compose.yml service " + name
		c := parseCommand(t, where, s.Command)
		env := composeEnv(s)
		checkEnv(t, where, c.role, env)
		byRole[c.role] = append(byRole[c.role], name)
		cmds[name], envs[name] = c, env
	}
	for role, n := range map[string]int{"nats": 3, "intake": 2, "scheduler": 2, "worker": 2} {
		if len(byRole[role]) != n {
			t.Errorf("%d services run jinn %s (%v), want %d", len(byRole[role]), role, byRole[role], n)
		}
	}
	if t.Failed() {
		return
	}

	// NATS: three servers that name each other.
	natsClient := map[string]string{} // service → client port
	natsRoute := map[string]string{}  // service → route port
	for _, name := range byRole["nats"] {
		c, s := cmds[name], p.Services[name]
		if c.flags["name"] != name || s.Hostname != name {
			t.Errorf("%s: --name %q and hostname %q should be the service name", name, c.flags["name"], s.Hostname)
		}
		if c.flags["cluster-name"] == "" {
			t.Errorf("%s: no --cluster-name: it would not join the cluster", name)
		}
		natsClient[name] = portOf(t, name+" --listen", c.flags["listen"])
		natsRoute[name] = portOf(t, name+" --cluster-listen", c.flags["cluster-listen"])
		checkUnderVolume(t, s, name, c.flags["store-dir"])
		if cf := c.flags["config"]; cf != "" {
			checkComposeNATSConfig(t, p, s, cf)
		}
		if s.HealthCheck == nil {
			t.Errorf("%s has no health check", name)
		}
	}
	for _, name := range byRole["nats"] {
		routes := map[string]bool{}
		for _, r := range splitList(cmds[name].flags["routes"]) {
			u := mustURL(t, name+" --routes", r)
			want, ok := natsRoute[u.Hostname()]
			if !ok || u.Port() != want {
				t.Errorf("%s: route %s names no NATS service's route port", name, r)
			}
			routes[u.Hostname()] = true
		}
		if len(routes) != len(byRole["nats"]) {
			t.Errorf("%s: routes %q should name all %d NATS servers", name, cmds[name].flags["routes"], len(byRole["nats"]))
		}
		if cmds[name].flags["cluster-name"] != cmds[byRole["nats"][0]].flags["cluster-name"] {
			t.Errorf("%s: a different --cluster-name", name)
		}
	}

	// What intake, scheduler and worker reach.
	for _, role := range []string{"intake", "scheduler", "worker"} {
		for _, name := range byRole[role] {
			c, env, s := cmds[name], envs[name], p.Services[name]
			natsURLs := splitList(c.setting("nats", "JINN_NATS", env))
			if len(natsURLs) != len(byRole["nats"]) {
				t.Errorf("%s: NATS URLs %v should list all %d servers", name, natsURLs, len(byRole["nats"]))
			}
			for _, raw := range natsURLs {
				u := mustURL(t, name+" NATS URL", raw)
				if want, ok := natsClient[u.Hostname()]; !ok || u.Port() != want {
					t.Errorf("%s: NATS URL %s names no NATS service's client port", name, raw)
				}
			}
			if r := c.setting("replicas", "JINN_REPLICAS", env); r != strconv.Itoa(len(byRole["nats"])) {
				t.Errorf("%s: replicas %q, want %d (one per NATS server)", name, r, len(byRole["nats"]))
			}
			checkComposeRedis(t, p, name, c.setting("redis", "JINN_REDIS", env))
			checkComposeArchive(t, p, name, c.setting("archive", "JINN_ARCHIVE", env), c.setting("s3-endpoint", "JINN_S3_ENDPOINT", env), env)
			for _, dep := range append(append([]string{}, byRole["nats"]...), "redis") {
				if _, ok := s.DependsOn[dep]; !ok {
					t.Errorf("%s does not depend on %s", name, dep)
				}
			}
		}
	}

	// Intakes: each published on its own host port, checked on its own port.
	published := map[string]string{}
	for _, name := range byRole["intake"] {
		c, s := cmds[name], p.Services[name]
		port := portOf(t, name+" --listen", c.flags["listen"])
		if len(s.Ports) != 1 || strconv.Itoa(int(s.Ports[0].Target)) != port || s.Ports[0].Published == "" {
			t.Errorf("%s: ports %+v, want one published port to its --listen port %s", name, s.Ports, port)
			continue
		}
		if other, dup := published[s.Ports[0].Published]; dup {
			t.Errorf("%s and %s are both published on %s", name, other, s.Ports[0].Published)
		}
		published[s.Ports[0].Published] = name
		if s.HealthCheck == nil {
			t.Errorf("%s has no health check", name)
		} else if m := healthPortRe.FindStringSubmatch(strings.Join(s.HealthCheck.Test, " ")); m == nil || m[1] != port || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "/readyz") {
			t.Errorf("%s: health check %q should GET /readyz on port %s", name, s.HealthCheck.Test, port)
		}
	}

	// Workers: distinct ids, their own volume, a stop grace longer than the drain.
	ids := map[string]bool{}
	for _, name := range byRole["worker"] {
		c, s := cmds[name], p.Services[name]
		if id := c.flags["id"]; id != "" {
			if ids[id] {
				t.Errorf("%s: worker id %s used twice", name, id)
			}
			ids[id] = true
		}
		checkUnderVolume(t, s, name, "/var/lib/jinn")
		if s.Restart != types.RestartPolicyOnFailure {
			t.Errorf("%s: restart %q; a worker drained by `jinn drain` exits 0 and must stay stopped (on-failure)", name, s.Restart)
		}
		if s.StopGracePeriod == nil {
			t.Errorf("%s: no stop_grace_period: Docker kills it after 10s, mid-drain", name)
		} else if d, err := time.ParseDuration(c.flags["drain-timeout"]); err != nil || d <= 0 || d >= time.Duration(*s.StopGracePeriod) {
			t.Errorf("%s: --drain-timeout %q should be set and shorter than stop_grace_period %v, so running jobs are handed back before the kill", name, c.flags["drain-timeout"], time.Duration(*s.StopGracePeriod))
		}
		if mem, err := strconv.Atoi(c.flags["job-memory"]); err != nil || s.MemLimit == 0 || int64(mem)<<20 >= int64(s.MemLimit) {
			t.Errorf("%s: --job-memory %q MiB should fit under mem_limit %d bytes with room for the worker", name, c.flags["job-memory"], s.MemLimit)
		}
	}

	for _, name := range []string{"redis", "minio"} {
		if s, ok := p.Services[name]; !ok || s.HealthCheck == nil {
			t.Errorf("service %s is missing or has no health check", name)
		}
	}
}

func portOf(t *testing.T, where, hostport string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %q is not host:port", where, hostport)
	}
	return port
}

func mustURL(t *testing.T, where, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Errorf("%s: %q is not a URL with a host", where, raw)
		return &url.URL{}
	}
	return u
}

// checkUnderVolume checks that path lies in a named volume of the service.
func checkUnderVolume(t *testing.T, s types.ServiceConfig, name, path string) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && (path == v.Target || strings.HasPrefix(path, v.Target+"/")) {
			return
		}
	}
	t.Errorf("%s: %s is not on a named volume; its data would go with the container", name, path)
}

// checkComposeNATSConfig checks the --config file given to jinn nats: mounted
// from the project's configs, parsed by nats-server, with the monitoring port
// the health check probes.
func checkComposeNATSConfig(t *testing.T, p *types.Project, s types.ServiceConfig, target string) {
	t.Helper()
	var content string
	for _, ref := range s.Configs {
		if ref.Target == target {
			content = p.Configs[ref.Source].Content
		}
	}
	if content == "" {
		t.Errorf("%s: --config %s is not mounted from a config with content", s.Name, target)
		return
	}
	f := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(f)
	if err != nil {
		t.Errorf("%s: nats config does not parse: %v", s.Name, err)
		return
	}
	m := healthPortRe.FindStringSubmatch(strings.Join(s.HealthCheck.Test, " "))
	if m == nil || m[1] != strconv.Itoa(opts.HTTPPort) {
		t.Errorf("%s: health check %q should probe the monitoring port %d", s.Name, s.HealthCheck.Test, opts.HTTPPort)
	}
	if opts.MaxPayload < 2<<20 {
		t.Errorf("%s: max_payload %d is below the 2 MiB jinn's streams accept", s.Name, opts.MaxPayload)
	}
}

// checkComposeRedis checks a Redis URL: it names the redis service, its port,
// and a user of the ACL file the service mounts.
func checkComposeRedis(t *testing.T, p *types.Project, name, raw string) {
	t.Helper()
	u := mustURL(t, name+" Redis URL", raw)
	redis, ok := p.Services[u.Hostname()]
	if !ok || !strings.HasPrefix(redis.Image, "redis:") {
		t.Errorf("%s: Redis URL %s names no redis service", name, raw)
		return
	}
	conf := parseRedisConf(t, readFile(t, "deploy/redis/redis.conf"))
	if u.Port() != conf["port"] {
		t.Errorf("%s: Redis URL port %s, redis.conf says %s", name, u.Port(), conf["port"])
	}
	mounted := map[string]string{}
	for _, v := range redis.Volumes {
		if v.Type == types.VolumeTypeBind {
			rel, _ := filepath.Rel(repoRoot(t), v.Source)
			mounted[filepath.ToSlash(rel)] = v.Target
		}
	}
	if !strings.Contains(strings.Join(redis.Command, " "), mounted["deploy/redis/redis.conf"]) || mounted["deploy/redis/redis.conf"] == "" {
		t.Errorf("redis service does not run deploy/redis/redis.conf (mounts %v, command %q)", mounted, redis.Command)
	}
	if mounted["deploy/redis/users.acl"] != conf["aclfile"] {
		t.Errorf("redis.conf reads the ACL from %s, the service mounts users.acl at %q", conf["aclfile"], mounted["deploy/redis/users.acl"])
	}
	pass, _ := u.User.Password()
	users := parseACL(t, readFile(t, "deploy/redis/users.acl"))
	if acl, ok := users[u.User.Username()]; !ok || !acl.on || !acl.passwords[pass] {
		t.Errorf("%s: Redis user %q with that password is not an enabled user of users.acl", name, u.User.Username())
	}
	if !strings.Contains(strings.Join(redis.HealthCheck.Test, " "), "redis://"+u.User.String()+"@") {
		t.Errorf("redis health check %q should log in as jinn does (user %s)", redis.HealthCheck.Test, u.User.Username())
	}
}

// checkComposeArchive checks the S3 archive: the endpoint names the MinIO
// service, and the init container makes the bucket and a user that matches
// the jinn services' credentials.
func checkComposeArchive(t *testing.T, p *types.Project, name, archive, endpoint string, env map[string]string) {
	t.Helper()
	a := mustURL(t, name+" archive", archive)
	if a.Scheme != "s3" {
		t.Errorf("%s: archive %s is not s3://bucket/prefix: intakes and workers in different containers need one shared archive", name, archive)
		return
	}
	e := mustURL(t, name+" S3 endpoint", endpoint)
	minio, ok := p.Services[e.Hostname()]
	if !ok || !strings.HasPrefix(minio.Image, "minio/minio") {
		t.Errorf("%s: S3 endpoint %s names no MinIO service", name, endpoint)
		return
	}
	if env["JINN_S3_PATH_STYLE"] != "true" {
		t.Errorf("%s: MinIO needs JINN_S3_PATH_STYLE=true", name)
	}
	if e.Port() != "9000" {
		t.Errorf("%s: S3 endpoint port %s; MinIO serves S3 on 9000", name, e.Port())
	}
	init, ok := p.Services["minio-init"]
	if !ok {
		t.Fatalf("no minio-init service")
	}
	script := strings.Join(init.Command, " ")
	for _, want := range []string{
		"mc alias set local http://" + e.Host,
		"mc mb --ignore-existing local/" + a.Host,
		"mc admin user add local " + env["AWS_ACCESS_KEY_ID"] + " ",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("minio-init does not run %q", want)
		}
	}
	if _, ok := init.DependsOn[e.Hostname()]; !ok {
		t.Errorf("minio-init does not wait for %s", e.Hostname())
	}
	if c, ok := p.Services[name].DependsOn["minio-init"]; !ok || c.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("%s does not wait for minio-init to complete", name)
	}
	for _, ref := range init.Configs {
		policy := p.Configs[ref.Source].Content
		prefix := strings.Trim(a.Path, "/")
		if !strings.Contains(policy, fmt.Sprintf("arn:aws:s3:::%s/%s/*", a.Host, prefix)) {
			t.Errorf("MinIO policy does not cover %s:\n%s", archive, policy)
		}
	}
	initEnv := composeEnv(init)
	if initEnv["JINN_S3_SECRET"] != env["AWS_SECRET_ACCESS_KEY"] {
		t.Errorf("%s: its S3 secret is not the one minio-init gives user %s", name, env["AWS_ACCESS_KEY_ID"])
	}
}
