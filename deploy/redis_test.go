package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// parseRedisConf reads redis.conf directives: the first word and the rest.
func parseRedisConf(t testing.TB, b []byte) map[string]string {
	t.Helper()
	conf := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, _ := strings.Cut(l, " ")
		conf[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	return conf
}

type aclUser struct {
	on        bool
	passwords map[string]bool
	rules     []string // everything but the state and the passwords
}

// parseACL reads a Redis ACL file: "user <name> <rule>..." lines.
func parseACL(t testing.TB, b []byte) map[string]aclUser {
	t.Helper()
	users := map[string]aclUser{}
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "user" {
			t.Errorf("users.acl line %d: %q does not start with `user <name>` (Redis allows no comments there)", i+1, l)
			continue
		}
		u := aclUser{passwords: map[string]bool{}}
		for _, r := range f[2:] {
			switch {
			case r == "on":
				u.on = true
			case r == "off":
				u.on = false
			case strings.HasPrefix(r, ">"):
				u.passwords[r[1:]] = true
			default:
				u.rules = append(u.rules, r)
			}
		}
		users[f[1]] = u
	}
	return users
}

func TestRedisConf(t *testing.T) {
	conf := parseRedisConf(t, readFile(t, "deploy/redis/redis.conf"))
	for k, want := range map[string]string{
		"appendonly":       "yes",
		"appendfsync":      "everysec",
		"maxmemory-policy": "noeviction",
		"aclfile":          "/etc/redis/users.acl",
	} {
		if conf[k] != want {
			t.Errorf("redis.conf %s = %q, want %q", k, conf[k], want)
		}
	}
	users := parseACL(t, readFile(t, "deploy/redis/users.acl"))
	if d, ok := users["default"]; !ok || d.on {
		t.Errorf("users.acl must turn the default user off")
	}
	j, ok := users["jinn"]
	if !ok || !j.on || len(j.passwords) == 0 {
		t.Fatalf("users.acl has no enabled user jinn with a password")
	}
	if strings.Join(j.rules, " ") != jinnACLRules {
		t.Errorf("users.acl: jinn's rules %q; the Kubernetes manifests and this test expect %q", strings.Join(j.rules, " "), jinnACLRules)
	}
}

// jinnACLRules are the rights of the user jinn: its own keys, the commands
// its Lua scripts and reads use, nothing dangerous.
const jinnACLRules = "~jinn:* resetchannels -@all +@read +@write +@keyspace +@scripting +@connection +@fast -@dangerous"

// TestRedisConfServes starts redis-server with deploy/redis/redis.conf and
// users.acl (moved to a temporary port and directory) and checks what the
// users may do: jinn runs its kind of scripts on its own keys and nothing else.
func TestRedisConfServes(t *testing.T) {
	bin := needBinary(t, "redis-server")
	dir := t.TempDir()
	port := freePort(t)
	acl := strings.NewReplacer("CHANGE-ME-jinn", "pw-jinn", "CHANGE-ME-admin", "pw-admin").Replace(string(readFile(t, "deploy/redis/users.acl")))
	if err := os.WriteFile(filepath.Join(dir, "users.acl"), []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, filepath.Join(repoRoot(t), "deploy/redis/redis.conf"),
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--aclfile", filepath.Join(dir, "users.acl"), "--daemonize", "no", "--save", "")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	jinn := redis.NewClient(&redis.Options{Addr: addr, Username: "jinn", Password: "pw-jinn"})
	defer jinn.Close()
	for {
		err := jinn.Ping(ctx).Err()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("redis-server with redis.conf did not answer: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	admin := redis.NewClient(&redis.Options{Addr: addr, Username: "admin", Password: "pw-admin"})
	defer admin.Close()
	if v, err := admin.ConfigGet(ctx, "appendonly").Result(); err != nil || v["appendonly"] != "yes" {
		t.Errorf("appendonly = %v, %v", v, err)
	}

	// What jinn's store does: hashes, sorted sets, scripts that name their keys
	// from a prefix, expiry.
	script := redis.NewScript(`redis.call('HSET', ARGV[1]..'job:1', 'status', 'QUEUED'); redis.call('ZADD', ARGV[1]..'jobs:all', 1, '1'); redis.call('EXPIRE', ARGV[1]..'job:1', 60); return redis.call('HGET', ARGV[1]..'job:1', 'status')`)
	if v, err := script.Run(ctx, jinn, nil, "jinn:").Text(); err != nil || v != "QUEUED" {
		t.Errorf("jinn's script = %q, %v", v, err)
	}
	if err := jinn.Set(ctx, "jinn:worker:w1", "{}", time.Minute).Err(); err != nil {
		t.Errorf("jinn SET with TTL: %v", err)
	}
	anon := redis.NewClient(&redis.Options{Addr: addr})
	defer anon.Close()
	for what, err := range map[string]error{
		"a key outside jinn:":         jinn.Set(ctx, "other", "1", 0).Err(),
		"a script outside jinn:":      script.Run(ctx, jinn, nil, "other:").Err(),
		"FLUSHALL":                    jinn.FlushAll(ctx).Err(),
		"CONFIG SET":                  jinn.ConfigSet(ctx, "appendonly", "no").Err(),
		"the default user (no login)": anon.Ping(ctx).Err(),
	} {
		if err == nil {
			t.Errorf("jinn could do %s", what)
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
