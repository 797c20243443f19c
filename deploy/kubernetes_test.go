package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/nats-io/nats-server/v2/server"
)

const k8sDir = "deploy/kubernetes"

// obj is one parsed manifest.
type obj struct {
	file string
	m    map[string]any
}

func (o obj) kind() string { return str(o.m, "kind") }
func (o obj) name() string { return str(o.m, "metadata", "name") }
func (o obj) String() string {
	return fmt.Sprintf("%s %s/%s", o.file, o.kind(), o.name())
}

// at walks maps by key and lists by index ("0").
func at(v any, path ...string) any {
	for _, p := range path {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string {
	switch s := at(v, path...).(type) {
	case string:
		return s
	case nil:
		return ""
	default:
		return fmt.Sprint(s)
	}
}

func list(v any, path ...string) []any {
	l, _ := at(v, path...).([]any)
	return l
}

func mapOf(v any, path ...string) map[string]any {
	m, _ := at(v, path...).(map[string]any)
	return m
}

func strs(v any, path ...string) []string {
	var out []string
	for _, e := range list(v, path...) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// parseYAMLDocs reads every document of a YAML stream.
func parseYAMLDocs(b []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
}

// apiVersions jinn's manifests may use: all GA, none deprecated.
var apiVersions = map[string]string{
	"Namespace":           "v1",
	"Service":             "v1",
	"ConfigMap":           "v1",
	"Secret":              "v1",
	"StatefulSet":         "apps/v1",
	"Deployment":          "apps/v1",
	"PodDisruptionBudget": "policy/v1",
	"NetworkPolicy":       "networking.k8s.io/v1",
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// k8sManifests loads the kustomization and every resource it lists, and
// checks that every YAML file in the directory is one of them.
func k8sManifests(t *testing.T) (kust map[string]any, objs []obj) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), k8sDir)
	docs, err := parseYAMLDocs(readFile(t, k8sDir+"/kustomization.yaml"))
	if err != nil || len(docs) != 1 {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	kust = docs[0]
	if str(kust, "apiVersion") != "kustomize.config.k8s.io/v1beta1" || str(kust, "kind") != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", str(kust, "apiVersion"), str(kust, "kind"))
	}
	listed := map[string]bool{}
	for _, r := range strs(kust, "resources") {
		listed[r] = true
		b, err := os.ReadFile(filepath.Join(dir, r))
		if err != nil {
			t.Errorf("kustomization lists %s: %v", r, err)
			continue
		}
		docs, err := parseYAMLDocs(b)
		if err != nil {
			t.Errorf("%s: %v", r, err)
			continue
		}
		for _, d := range docs {
			objs = append(objs, obj{file: r, m: d})
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !listed[b] {
			t.Errorf("%s is not in kustomization.yaml's resources", b)
		}
	}
	seen := map[string]bool{}
	for _, o := range objs {
		want, ok := apiVersions[o.kind()]
		if !ok {
			t.Errorf("%s: kind %q is not one jinn's manifests should need", o, o.kind())
		} else if got := str(o.m, "apiVersion"); got != want {
			t.Errorf("%s: apiVersion %s, want %s", o, got, want)
		}
		if !dns1123.MatchString(o.name()) {
			t.Errorf("%s: name %q is not a DNS label", o, o.name())
		}
		key := o.kind() + "/" + o.name()
		if seen[key] {
			t.Errorf("%s defined twice", key)
		}
		seen[key] = true
	}
	return kust, objs
}

// generated returns the names and keys of the kustomization's generators:
// kind ("ConfigMap", "Secret") → name → key → literal value ("" for files).
func generated(t *testing.T, kust map[string]any) map[string]map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]map[string]string{"ConfigMap": {}, "Secret": {}}
	for kind, field := range map[string]string{"ConfigMap": "configMapGenerator", "Secret": "secretGenerator"} {
		for _, g := range list(kust, field) {
			keys := map[string]string{}
			for _, l := range strs(g, "literals") {
				k, v, _ := strings.Cut(l, "=")
				keys[k] = v
			}
			for _, f := range strs(g, "files") {
				k, file, ok := strings.Cut(f, "=")
				if !ok {
					file, k = f, filepath.Base(f)
				}
				if _, err := os.Stat(filepath.Join(repoRoot(t), k8sDir, file)); err != nil {
					t.Errorf("%s %s: file %s: %v", field, str(g, "name"), file, err)
				}
				keys[k] = ""
			}
			out[kind][str(g, "name")] = keys
		}
	}
	return out
}

func TestKubernetes(t *testing.T) {
	kust, objs := k8sManifests(t)
	gen := generated(t, kust)
	byKind := map[string]map[string]obj{}
	for _, o := range objs {
		if byKind[o.kind()] == nil {
			byKind[o.kind()] = map[string]obj{}
		}
		byKind[o.kind()][o.name()] = o
	}
	ns := str(kust, "namespace")
	if _, ok := byKind["Namespace"][ns]; !ok {
		t.Errorf("the kustomization's namespace %q is not among the manifests", ns)
	}

	// Workloads: selectors match their pods, pods reach only what exists.
	var workloads []obj
	for _, o := range objs {
		if o.kind() == "Deployment" || o.kind() == "StatefulSet" {
			workloads = append(workloads, o)
		}
	}
	podLabels := func(o obj) map[string]any { return mapOf(o.m, "spec", "template", "metadata", "labels") }
	for _, w := range workloads {
		if !selects(mapOf(w.m, "spec", "selector", "matchLabels"), podLabels(w)) || len(mapOf(w.m, "spec", "selector", "matchLabels")) == 0 {
			t.Errorf("%s: selector %v does not match its pod labels %v", w, at(w.m, "spec", "selector"), podLabels(w))
		}
		if podLabels(w)["app.kubernetes.io/part-of"] != "jinn" {
			t.Errorf("%s: pods lack app.kubernetes.io/part-of=jinn (Redis's NetworkPolicy admits by it)", w)
		}
		checkPodRefs(t, w, gen)
	}
	matchesWorkload := func(sel map[string]any) []obj {
		var out []obj
		for _, w := range workloads {
			if len(sel) > 0 && selects(sel, podLabels(w)) {
				out = append(out, w)
			}
		}
		return out
	}
	for _, o := range objs {
		switch o.kind() {
		case "Service":
			ws := matchesWorkload(mapOf(o.m, "spec", "selector"))
			if len(ws) != 1 {
				t.Errorf("%s selects %d workloads, want 1", o, len(ws))
				continue
			}
			for _, p := range list(o.m, "spec", "ports") {
				if tp := str(p, "targetPort"); tp != "" && !hasContainerPort(ws[0], tp) {
					t.Errorf("%s: targetPort %s is no container port of %s", o, tp, ws[0])
				}
			}
		case "PodDisruptionBudget":
			if len(matchesWorkload(mapOf(o.m, "spec", "selector", "matchLabels"))) != 1 {
				t.Errorf("%s selects no single workload", o)
			}
		case "NetworkPolicy":
			if len(matchesWorkload(mapOf(o.m, "spec", "podSelector", "matchLabels"))) != 1 {
				t.Errorf("%s selects no single workload", o)
			}
		}
	}
	for _, w := range workloads {
		if w.kind() == "StatefulSet" {
			svc, ok := byKind["Service"][str(w.m, "spec", "serviceName")]
			if !ok || !selects(mapOf(svc.m, "spec", "selector"), podLabels(w)) {
				t.Errorf("%s: serviceName %q is no Service of its pods", w, str(w.m, "spec", "serviceName"))
			}
		}
		// jinn's own workloads; a single Redis with a PDB would block node drains.
		if str(at(containers(w), "0"), "image") == "jinn" && !hasPDB(objs, podLabels(w)) {
			t.Errorf("%s has no PodDisruptionBudget", w)
		}
	}

	checkK8sJinn(t, byKind, gen)
}

// selects reports whether every label of sel is in labels.
func selects(sel, labels map[string]any) bool {
	for k, v := range sel {
		if fmt.Sprint(labels[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func hasPDB(objs []obj, labels map[string]any) bool {
	for _, o := range objs {
		if o.kind() == "PodDisruptionBudget" && selects(mapOf(o.m, "spec", "selector", "matchLabels"), labels) {
			return true
		}
	}
	return false
}

func containers(w obj) []any { return list(w.m, "spec", "template", "spec", "containers") }

func hasContainerPort(w obj, port string) bool {
	for _, c := range containers(w) {
		if containerHasPort(c, port) {
			return true
		}
	}
	return false
}

// containerHasPort reports whether a container declares port, by name or number.
func containerHasPort(c any, port string) bool {
	for _, p := range list(c, "ports") {
		if str(p, "name") == port || str(p, "containerPort") == port {
			return true
		}
	}
	return false
}

// checkPodRefs checks a pod's references: ConfigMaps and Secrets come from
// the generators, probe ports exist, mounts name volumes.
func checkPodRefs(t *testing.T, w obj, gen map[string]map[string]map[string]string) {
	t.Helper()
	pod := at(w.m, "spec", "template", "spec")
	volumes := map[string]bool{}
	for _, v := range list(pod, "volumes") {
		volumes[str(v, "name")] = true
		if n := str(v, "configMap", "name"); n != "" && gen["ConfigMap"][n] == nil {
			t.Errorf("%s: volume from ConfigMap %s, which nothing makes", w, n)
		}
		if n := str(v, "secret", "secretName"); n != "" && gen["Secret"][n] == nil {
			t.Errorf("%s: volume from Secret %s, which nothing makes", w, n)
		}
	}
	for _, c := range list(w.m, "spec", "volumeClaimTemplates") {
		volumes[str(c, "metadata", "name")] = true
	}
	for _, c := range list(pod, "containers") {
		for _, m := range list(c, "volumeMounts") {
			if !volumes[str(m, "name")] {
				t.Errorf("%s: container %s mounts volume %s, which the pod lacks", w, str(c, "name"), str(m, "name"))
			}
		}
		for _, e := range list(c, "envFrom") {
			if n := str(e, "configMapRef", "name"); n != "" && gen["ConfigMap"][n] == nil {
				t.Errorf("%s: envFrom ConfigMap %s, which nothing makes", w, n)
			}
			if n := str(e, "secretRef", "name"); n != "" && gen["Secret"][n] == nil && str(e, "secretRef", "optional") != "true" {
				t.Errorf("%s: envFrom Secret %s, which nothing makes", w, n)
			}
		}
		for _, e := range list(c, "env") {
			if n, k := str(e, "valueFrom", "secretKeyRef", "name"), str(e, "valueFrom", "secretKeyRef", "key"); n != "" {
				if _, ok := gen["Secret"][n][k]; !ok {
					t.Errorf("%s: env %s from Secret %s key %s, which nothing makes", w, str(e, "name"), n, k)
				}
			}
		}
		for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
			p := mapOf(c, probe)
			if p == nil {
				continue
			}
			if port := str(p, "httpGet", "port") + str(p, "tcpSocket", "port"); port != "" && !containerHasPort(c, port) {
				t.Errorf("%s: %s on port %s, which container %s lacks", w, probe, port, str(c, "name"))
			}
		}
	}
}

// k8sEnv is a container's environment: its envFrom ConfigMaps and Secrets
// (their literal keys) and its env.
func k8sEnv(c any, gen map[string]map[string]map[string]string) map[string]string {
	env := map[string]string{}
	for _, e := range list(c, "envFrom") {
		for kind, ref := range map[string]string{"ConfigMap": "configMapRef", "Secret": "secretRef"} {
			for k, v := range gen[kind][str(e, ref, "name")] {
				env[k] = v
			}
		}
	}
	for _, e := range list(c, "env") {
		env[str(e, "name")] = str(e, "value")
	}
	return env
}

var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkK8sJinn checks the containers that run jinn: real roles and flags,
// real variables, and that NATS, Redis and the worker's memory agree.
func checkK8sJinn(t *testing.T, byKind map[string]map[string]obj, gen map[string]map[string]map[string]string) {
	t.Helper()
	cmds := map[string]command{}
	envs := map[string]map[string]string{}
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		for _, w := range byKind[kind] {
			for _, c := range containers(w) {
				if str(c, "image") != "jinn" {
					continue
				}
				where := fmt.Sprintf("%s container %s", w, str(c, "name"))
				if len(list(c, "command")) > 0 {
					t.Errorf("%s overrides the image's entrypoint", where)
				}
				env := k8sEnv(c, gen)
				args := strs(c, "args")
				for _, a := range args {
					for _, m := range k8sVarRef.FindAllStringSubmatch(a, -1) {
						if _, ok := env[m[1]]; !ok {
							t.Errorf("%s: $(%s) in its args is not in its env", where, m[1])
						}
					}
				}
				cmd := parseCommand(t, where, args)
				checkEnv(t, where, cmd.role, env)
				cmds[w.name()], envs[w.name()] = cmd, env
			}
		}
	}
	for _, name := range []string{"nats", "intake", "scheduler", "worker"} {
		if cmds[name].role != name {
			t.Errorf("workload %s does not run jinn %s", name, name)
		}
	}
	if t.Failed() {
		return
	}

	// NATS: the routes and the clients name the StatefulSet's pods.
	sts := byKind["StatefulSet"]["nats"]
	replicas, _ := strconv.Atoi(str(sts.m, "spec", "replicas"))
	svc := byKind["Service"][str(sts.m, "spec", "serviceName")]
	if replicas != 3 || str(svc.m, "spec", "clusterIP") != "None" {
		t.Errorf("NATS: %d replicas behind Service clusterIP %q; want 3 behind a headless Service", replicas, str(svc.m, "spec", "clusterIP"))
	}
	pods := func(port string) map[string]bool {
		m := map[string]bool{}
		for i := range replicas {
			m[fmt.Sprintf("nats://%s-%d.%s:%s", sts.name(), i, svc.name(), port)] = true
		}
		return m
	}
	nats := cmds["nats"]
	sameSet(t, "NATS routes", splitList(nats.flags["routes"]), pods(portOf(t, "nats --cluster-listen", nats.flags["cluster-listen"])))
	if nats.flags["name"] != "$(POD_NAME)" || str(at(containers(sts), "0"), "env", "0", "valueFrom", "fieldRef", "fieldPath") == "" {
		t.Errorf("NATS servers should be named after their pods")
	}
	checkK8sNATSConfig(t, gen)
	for _, name := range []string{"intake", "scheduler", "worker"} {
		c, env := cmds[name], envs[name]
		sameSet(t, name+" NATS URLs", splitList(c.setting("nats", "JINN_NATS", env)), pods(portOf(t, "nats --listen", nats.flags["listen"])))
		if r := c.setting("replicas", "JINN_REPLICAS", env); r != strconv.Itoa(replicas) {
			t.Errorf("%s: replicas %q, want %d", name, r, replicas)
		}
		// Redis: the Service, its port, a user of the ACL the server mounts.
		u := mustURL(t, name+" Redis URL", c.setting("redis", "JINN_REDIS", env))
		rsvc, ok := byKind["Service"][u.Hostname()]
		if !ok || str(rsvc.m, "spec", "ports", "0", "port") != u.Port() {
			t.Errorf("%s: Redis URL %s names no Service port", name, u.Redacted())
		}
		pass, _ := u.User.Password()
		if acl := parseACL(t, readFile(t, k8sDir+"/redis/users.acl"))[u.User.Username()]; !acl.on || !acl.passwords[pass] {
			t.Errorf("%s: Redis user %s with that password is not in redis/users.acl", name, u.User.Username())
		}
		if a := c.setting("archive", "JINN_ARCHIVE", env); !strings.HasPrefix(a, "s3://") {
			t.Errorf("%s: archive %q: pods need a shared S3 archive", name, a)
		}
	}
	for _, f := range []string{"redis.conf", "users.acl"} {
		if !bytes.Equal(readFile(t, k8sDir+"/redis/"+f), readFile(t, "deploy/redis/"+f)) {
			t.Errorf("%s/redis/%s differs from deploy/redis/%s: copy it again", k8sDir, f, f)
		}
	}

	// Worker: the allowance is the pod's memory limit, the grace period
	// outlasts the drain.
	w := byKind["Deployment"]["worker"]
	wc := at(containers(w), "0")
	var memRef map[string]any
	for _, e := range list(wc, "env") {
		if str(e, "name") == "JINN_JOB_MEMORY" {
			memRef = mapOf(e, "valueFrom", "resourceFieldRef")
		}
	}
	if str(memRef, "resource") != "limits.memory" || str(memRef, "divisor") != "1Mi" || str(memRef, "containerName") != str(wc, "name") {
		t.Errorf("worker: JINN_JOB_MEMORY should come from its own limits.memory in 1Mi, got %v", memRef)
	}
	if str(wc, "resources", "limits", "memory") == "" {
		t.Errorf("worker: no memory limit, so no allowance")
	}
	if _, set := cmds["worker"].flags["job-memory"]; set {
		t.Errorf("worker: --job-memory in args overrides the allowance from the limit")
	}
	grace, _ := strconv.Atoi(str(w.m, "spec", "template", "spec", "terminationGracePeriodSeconds"))
	drain, err := time.ParseDuration(cmds["worker"].flags["drain-timeout"])
	if err != nil || drain <= 0 || drain >= time.Duration(grace)*time.Second {
		t.Errorf("worker: --drain-timeout %q should be set and shorter than terminationGracePeriodSeconds %d", cmds["worker"].flags["drain-timeout"], grace)
	}
	if str(w.m, "spec", "strategy", "rollingUpdate", "maxUnavailable") != "0" {
		t.Errorf("worker: a rolling update should start a new worker before an old one drains (maxUnavailable 0)")
	}
}

func sameSet(t *testing.T, what string, got []string, want map[string]bool) {
	t.Helper()
	g := map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	if len(g) != len(want) || len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, got, sortedKeys(want))
		return
	}
	for s := range want {
		if !g[s] {
			t.Errorf("%s = %v, want %v", what, got, sortedKeys(want))
			return
		}
	}
}

// checkK8sNATSConfig parses the nats.conf the StatefulSet mounts.
func checkK8sNATSConfig(t *testing.T, gen map[string]map[string]map[string]string) {
	t.Helper()
	if _, ok := gen["ConfigMap"]["nats"]["nats.conf"]; !ok {
		t.Errorf("no ConfigMap nats with nats.conf")
		return
	}
	opts, err := server.ProcessConfigFile(filepath.Join(repoRoot(t), k8sDir, "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if opts.HTTPPort != 8222 || opts.MaxPayload < 2<<20 {
		t.Errorf("nats.conf: monitoring port %d (the probes use 8222), max_payload %d (jinn's streams take 2 MiB)", opts.HTTPPort, opts.MaxPayload)
	}
}
