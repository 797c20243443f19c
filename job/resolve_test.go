package job

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func cluster(name string, st ClusterStatus, tags ...string) Cluster {
	return Cluster{Name: name, Status: st, Tags: tags}
}

func command(name string, st CommandStatus, tags ...string) Command {
	return Command{Name: name, Status: st, Tags: tags, Executable: []string{"/bin/" + name}}
}

// restricted returns cmd limited to clusters matching one of crits.
func restricted(cmd Command, crits ...[]string) Command {
	cmd.ClusterCriteria = crits
	return cmd
}

// freeOf reports free memory from a table; unknown clusters have none.
func freeOf(m map[string]int64) func(string) int64 {
	return func(c string) int64 { return m[c] }
}

func tags(t ...string) []string { return t }

func TestMatches(t *testing.T) {
	tests := []struct {
		name      string
		tags      []string
		criterion []string
		want      bool
	}{
		{"prod", tags("a", "b"), nil, true}, // nothing asked: Validate refuses empty criteria
		{"prod", tags("a", "b"), tags("a"), true},
		{"prod", tags("a", "b"), tags("b", "a"), true},
		{"prod", tags("a", "b"), tags("a", "a"), true},
		{"prod", tags("a", "b"), tags("a", "c"), false},
		{"prod", nil, tags("a"), false},
		{"prod", tags("a"), tags("A"), false}, // tags are case-sensitive
		{"prod", tags("a:b"), tags("a"), false},
		{"prod", tags("a"), tags("a:b"), false},
		{"prod", nil, tags("name:prod"), true}, // implicit tag
		{"prod", tags("a"), tags("name:prod", "a"), true},
		{"prod", tags("a"), tags("name:prod", "b"), false},
		{"prod", nil, tags("name:bonus"), false},
		{"prod", nil, tags("name:prod", "name:bonus"), false},
		{"prod", nil, tags("name:pro"), false},
		{"prod", nil, tags("name:prod2"), false},
		{"prod", nil, tags("name:"), false},
		{"", nil, tags("name:"), true},
	}
	for _, tt := range tests {
		if got := Matches(tt.name, tt.tags, tt.criterion); got != tt.want {
			t.Errorf("Matches(%q, %q, %q) = %v, want %v", tt.name, tt.tags, tt.criterion, got, tt.want)
		}
	}
}

// resolveCase is one resolution and what must come of it.
type resolveCase struct {
	name string
	req  Request
	cat  Catalog
	free map[string]int64
	// On success:
	cluster   string
	command   string
	criterion int
	// On failure, every string must appear in the Tried entry of the same index,
	// and Tried must have exactly len(tried) entries.
	tried [][]string
}

func (tt resolveCase) run(t *testing.T) {
	t.Helper()
	res, err := Resolve(&tt.req, tt.cat, freeOf(tt.free), rand.New(rand.NewPCG(1, 1)))
	if tt.tried == nil {
		if err != nil {
			t.Errorf("%s: Resolve() error = %v", tt.name, err)
			return
		}
		if res.Cluster.Name != tt.cluster || res.Command.Name != tt.command || res.Criterion != tt.criterion {
			t.Errorf("%s: Resolve() = cluster %s, command %s, criterion %d; want %s, %s, %d",
				tt.name, res.Cluster.Name, res.Command.Name, res.Criterion, tt.cluster, tt.command, tt.criterion)
		}
		return
	}
	if err == nil {
		t.Errorf("%s: Resolve() = cluster %s, command %s; want an error", tt.name, res.Cluster.Name, res.Command.Name)
		return
	}
	var re *ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("%s: error %v (%T) is not a *ResolveError", tt.name, err, err)
	}
	if res.Cluster.Name != "" || res.Command.Name != "" {
		t.Errorf("%s: a failed Resolve returned %+v", tt.name, res)
	}
	if len(re.Tried) != len(tt.tried) {
		t.Errorf("%s: Tried has %d entries, want %d:\n  %s", tt.name, len(re.Tried), len(tt.tried), strings.Join(re.Tried, "\n  "))
		return
	}
	for i, want := range tt.tried {
		for _, w := range want {
			if !strings.Contains(re.Tried[i], w) {
				t.Errorf("%s: Tried[%d] = %q, want it to mention %q", tt.name, i, re.Tried[i], w)
			}
		}
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "no cluster and command can run this job: ") || !strings.Contains(msg, re.Tried[0]) {
		t.Errorf("%s: Error() = %q", tt.name, msg)
	}
}

func TestResolveCommand(t *testing.T) {
	clusters := []Cluster{cluster("local", ClusterUp, "type:local")}
	tests := []resolveCase{
		{
			name:  "no command has the tags",
			req:   Request{Command: tags("type:spark")},
			cat:   Catalog{Clusters: clusters, Commands: []Command{command("exec", CommandActive, "type:exec")}},
			tried: [][]string{{"no command has tags [type:spark]"}},
		},
		{
			name:  "no command at all",
			req:   Request{Command: tags("type:spark")},
			cat:   Catalog{Clusters: clusters},
			tried: [][]string{{"no command has tags [type:spark]"}},
		},
		{
			name: "a command has only some of the tags",
			req:  Request{Command: tags("type:spark", "ver:3")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				command("spark2", CommandActive, "type:spark", "ver:2"),
			}},
			tried: [][]string{{"no command has tags [type:spark ver:3]"}},
		},
		{
			name: "deprecated",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				command("spark", CommandDeprecated, "type:spark"),
			}},
			tried: [][]string{{"command spark is DEPRECATED"}},
		},
		{
			name: "inactive",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				command("spark", CommandInactive, "type:spark"),
			}},
			tried: [][]string{{"command spark is INACTIVE"}},
		},
		{
			name: "deprecated and inactive, both named",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				command("spark3", CommandInactive, "type:spark"),
				command("spark2", CommandDeprecated, "type:spark"),
				command("hive", CommandActive, "type:hive"),
			}},
			tried: [][]string{{"command spark2 is DEPRECATED"}, {"command spark3 is INACTIVE"}},
		},
		{
			name: "deprecated skipped for an active one",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				command("a-spark", CommandDeprecated, "type:spark"),
				command("b-spark", CommandActive, "type:spark"),
			}},
			cluster: "local", command: "b-spark", criterion: -1,
		},
		{
			name: "implicit name tag picks a command",
			req:  Request{Command: tags("name:spark2")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				command("spark2", CommandActive, "type:spark"),
				command("spark3", CommandActive, "type:spark"),
			}},
			cluster: "local", command: "spark2", criterion: -1,
		},
		{
			name: "implicit name tag with other tags",
			req:  Request{Command: tags("name:spark3", "type:spark")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				command("spark2", CommandActive, "type:spark"),
				command("spark3", CommandActive, "type:spark"),
			}},
			cluster: "local", command: "spark3", criterion: -1,
		},
		{
			name: "unset status counts as ACTIVE and UP",
			req:  Request{Command: tags("type:exec")},
			cat: Catalog{
				Clusters: []Cluster{cluster("local", "")},
				Commands: []Command{command("exec", "", "type:exec")},
			},
			cluster: "local", command: "exec", criterion: -1,
		},
	}
	for _, tt := range tests {
		tt.run(t)
	}
}

func TestResolveCommandClusterCriteria(t *testing.T) {
	yarnOnly := restricted(command("spark", CommandActive, "type:spark"), tags("type:yarn"))
	tests := []resolveCase{
		{
			name: "command criteria restrict clusters, free memory aside",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{
				Clusters: []Cluster{cluster("local", ClusterUp, "type:local"), cluster("yarn1", ClusterUp, "type:yarn")},
				Commands: []Command{yarnOnly},
			},
			free:    map[string]int64{"local": 1 << 20, "yarn1": 1},
			cluster: "yarn1", command: "spark", criterion: -1,
		},
		{
			name: "any of the command's criteria",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{
				Clusters: []Cluster{cluster("local", ClusterUp, "type:local"), cluster("k8s", ClusterUp, "type:k8s")},
				Commands: []Command{restricted(command("spark", CommandActive, "type:spark"), tags("type:yarn"), tags("name:k8s"))},
			},
			free:    map[string]int64{"local": 100, "k8s": 1},
			cluster: "k8s", command: "spark", criterion: -1,
		},
		{
			name: "command criteria need every tag",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{
				Clusters: []Cluster{cluster("a", ClusterUp, "type:yarn"), cluster("b", ClusterUp, "type:yarn", "env:prod")},
				Commands: []Command{restricted(command("spark", CommandActive, "type:spark"), tags("type:yarn", "env:prod"))},
			},
			free:    map[string]int64{"a": 100, "b": 1},
			cluster: "b", command: "spark", criterion: -1,
		},
		{
			name: "command criteria match no cluster at all",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{
				Clusters: []Cluster{cluster("local", ClusterUp, "type:local")},
				Commands: []Command{yarnOnly},
			},
			tried: [][]string{{"command spark", "no cluster matches its cluster criteria [[type:yarn]]"}},
		},
		{
			name: "command criteria match only clusters that are not UP",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{
				Clusters: []Cluster{
					cluster("local", ClusterUp, "type:local"),
					cluster("yarn2", ClusterTerminated, "type:yarn"),
					cluster("yarn1", ClusterOutOfService, "type:yarn"),
				},
				Commands: []Command{yarnOnly},
			},
			tried: [][]string{{"command spark", "no UP cluster matches its cluster criteria [[type:yarn]]", "yarn1 is OUT_OF_SERVICE, yarn2 is TERMINATED"}},
		},
		{
			name: "job criterion matches a cluster the command excludes",
			req:  Request{Command: tags("type:spark"), Clusters: [][]string{tags("type:local")}},
			cat: Catalog{
				Clusters: []Cluster{cluster("local", ClusterUp, "type:local"), cluster("yarn1", ClusterUp, "type:yarn")},
				Commands: []Command{yarnOnly},
			},
			tried: [][]string{{"command spark, cluster criterion 0 [type:local]", "local is UP but command spark's cluster criteria [[type:yarn]] exclude it"}},
		},
	}
	for _, tt := range tests {
		tt.run(t)
	}
}

func TestResolveNoUpCluster(t *testing.T) {
	exec := command("exec", CommandActive, "type:exec")
	tests := []resolveCase{
		{
			name:  "no cluster defined",
			req:   Request{Command: tags("type:exec")},
			cat:   Catalog{Commands: []Command{exec}},
			tried: [][]string{{"command exec", "no cluster is defined"}},
		},
		{
			name: "every cluster down",
			req:  Request{Command: tags("type:exec")},
			cat: Catalog{
				Clusters: []Cluster{cluster("b", ClusterTerminated), cluster("a", ClusterOutOfService)},
				Commands: []Command{exec},
			},
			tried: [][]string{{"command exec", "no cluster is UP", "a is OUT_OF_SERVICE", "b is TERMINATED"}},
		},
		{
			name: "every cluster down, with job criteria",
			req:  Request{Command: tags("type:exec"), Clusters: [][]string{tags("name:a")}},
			cat: Catalog{
				Clusters: []Cluster{cluster("a", ClusterOutOfService)},
				Commands: []Command{exec},
			},
			// The command has nowhere to run: the job's criteria are not tried.
			tried: [][]string{{"command exec", "no cluster is UP", "a is OUT_OF_SERVICE"}},
		},
	}
	for _, tt := range tests {
		tt.run(t)
	}
}

// fallback is Genie's example: nightly ETL prefers the bonus clusters and falls
// back to production.
func fallback(bonus ClusterStatus) resolveCase {
	return resolveCase{
		req: Request{Command: tags("type:spark"), Clusters: [][]string{tags("sched:bonus"), tags("sched:prod")}},
		cat: Catalog{
			Clusters: []Cluster{
				cluster("prod", ClusterUp, "sched:prod", "type:yarn"),
				cluster("bonus", bonus, "sched:bonus", "type:yarn"),
				cluster("adhoc", ClusterUp, "sched:adhoc", "type:yarn"),
			},
			Commands: []Command{command("spark", CommandActive, "type:spark")},
		},
		free: map[string]int64{"prod": 10, "bonus": 1, "adhoc": 1000},
	}
}

func TestResolvePriority(t *testing.T) {
	tests := []resolveCase{}
	add := func(name string, tt resolveCase, mod func(*resolveCase)) {
		tt.name = name
		mod(&tt)
		tests = append(tests, tt)
	}
	add("first criterion matches, though the second has more free memory", fallback(ClusterUp), func(tt *resolveCase) {
		tt.cluster, tt.command, tt.criterion = "bonus", "spark", 0
	})
	add("falls back when the first criterion's cluster is OUT_OF_SERVICE", fallback(ClusterOutOfService), func(tt *resolveCase) {
		tt.cluster, tt.command, tt.criterion = "prod", "spark", 1
	})
	add("falls back when the first criterion's cluster is TERMINATED", fallback(ClusterTerminated), func(tt *resolveCase) {
		tt.cluster, tt.command, tt.criterion = "prod", "spark", 1
	})
	add("falls back when no cluster has the first criterion's tags", fallback(ClusterUp), func(tt *resolveCase) {
		tt.req.Clusters = [][]string{tags("sched:nightly"), tags("sched:prod")}
		tt.cluster, tt.command, tt.criterion = "prod", "spark", 1
	})
	add("third criterion", fallback(ClusterOutOfService), func(tt *resolveCase) {
		tt.req.Clusters = [][]string{tags("sched:bonus"), tags("sched:nightly"), tags("type:yarn")}
		tt.cluster, tt.command, tt.criterion = "adhoc", "spark", 2 // most free of prod and adhoc
	})
	add("a criterion needs every one of its tags", fallback(ClusterUp), func(tt *resolveCase) {
		tt.req.Clusters = [][]string{tags("sched:bonus", "sched:prod"), tags("sched:prod", "type:yarn")}
		tt.cluster, tt.command, tt.criterion = "prod", "spark", 1
	})
	add("no job criteria: any UP cluster, most free memory", fallback(ClusterUp), func(tt *resolveCase) {
		tt.req.Clusters = nil
		tt.cluster, tt.command, tt.criterion = "adhoc", "spark", -1
	})
	add("no job criteria: a cluster not UP is never chosen", fallback(ClusterOutOfService), func(tt *resolveCase) {
		tt.req.Clusters = nil
		tt.free = map[string]int64{"bonus": 1 << 40, "prod": 2, "adhoc": 1}
		tt.cluster, tt.command, tt.criterion = "prod", "spark", -1
	})
	add("implicit name tag as a cluster criterion", fallback(ClusterUp), func(tt *resolveCase) {
		tt.req.Clusters = [][]string{tags("name:prod")}
		tt.cluster, tt.command, tt.criterion = "prod", "spark", 0
	})
	add("implicit name tag of a cluster that is OUT_OF_SERVICE", fallback(ClusterOutOfService), func(tt *resolveCase) {
		tt.req.Clusters = [][]string{tags("name:bonus")}
		tt.tried = [][]string{{"command spark, cluster criterion 0 [name:bonus]", "bonus is OUT_OF_SERVICE"}}
	})
	add("every criterion fails: each is named with its reason", fallback(ClusterOutOfService), func(tt *resolveCase) {
		tt.req.Clusters = [][]string{tags("sched:bonus"), tags("sched:nightly")}
		tt.tried = [][]string{
			{"command spark, cluster criterion 0 [sched:bonus]: bonus is OUT_OF_SERVICE"},
			{"command spark, cluster criterion 1 [sched:nightly]: no cluster has these tags"},
		}
	})
	for _, tt := range tests {
		tt.run(t)
	}
}

func TestResolveSeveralCommands(t *testing.T) {
	clusters := []Cluster{
		cluster("yarn1", ClusterOutOfService, "type:yarn"),
		cluster("k8s", ClusterUp, "type:k8s"),
	}
	spark := func(name string, crit string) Command {
		return restricted(command(name, CommandActive, "type:spark"), tags(crit))
	}
	tests := []resolveCase{
		{
			name: "tried in name order, not catalog order",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				spark("spark-c", "type:k8s"), spark("spark-a", "type:k8s"), spark("spark-b", "type:k8s"),
			}},
			cluster: "k8s", command: "spark-a", criterion: -1,
		},
		{
			name: "a later command is used when the first has no cluster",
			req:  Request{Command: tags("type:spark")},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				spark("spark-b", "type:k8s"), spark("spark-a", "type:yarn"),
			}},
			cluster: "k8s", command: "spark-b", criterion: -1,
		},
		{
			name: "a later command is used when the first's clusters miss every job criterion",
			req:  Request{Command: tags("type:spark"), Clusters: [][]string{tags("type:k8s")}},
			cat: Catalog{
				Clusters: []Cluster{cluster("yarn1", ClusterUp, "type:yarn"), cluster("k8s", ClusterUp, "type:k8s")},
				Commands: []Command{spark("spark-b", "type:k8s"), spark("spark-a", "type:yarn")},
			},
			cluster: "k8s", command: "spark-b", criterion: 0,
		},
		{
			name: "the first command wins on a lower-priority criterion over a later command's higher one",
			req:  Request{Command: tags("type:spark"), Clusters: [][]string{tags("type:k8s"), tags("type:yarn")}},
			cat: Catalog{
				Clusters: []Cluster{cluster("yarn1", ClusterUp, "type:yarn"), cluster("k8s", ClusterUp, "type:k8s")},
				Commands: []Command{spark("spark-b", "type:k8s"), spark("spark-a", "type:yarn")},
			},
			cluster: "yarn1", command: "spark-a", criterion: 1,
		},
		{
			name: "every command fails: Tried says why for each, in order",
			req:  Request{Command: tags("type:spark"), Clusters: [][]string{tags("type:yarn")}},
			cat: Catalog{Clusters: clusters, Commands: []Command{
				spark("spark-c", "type:k8s"), command("spark-0", CommandDeprecated, "type:spark"), spark("spark-a", "type:yarn"),
			}},
			tried: [][]string{
				{"command spark-0 is DEPRECATED"},
				{"command spark-a:", "no UP cluster matches its cluster criteria [[type:yarn]]", "yarn1 is OUT_OF_SERVICE"},
				{"command spark-c, cluster criterion 0 [type:yarn]:", "yarn1 is OUT_OF_SERVICE"},
			},
		},
	}
	for _, tt := range tests {
		tt.run(t)
	}
}

func TestResolveTriedExplainsEachCluster(t *testing.T) {
	// One criterion matches three clusters, each unusable for its own reason.
	req := Request{Command: tags("type:spark"), Clusters: [][]string{tags("sched:prod")}}
	cat := Catalog{
		Clusters: []Cluster{
			cluster("p3", ClusterUp, "sched:prod", "type:local"),
			cluster("p2", ClusterTerminated, "sched:prod", "type:yarn"),
			cluster("p1", ClusterOutOfService, "sched:prod", "type:yarn"),
			cluster("other", ClusterUp, "type:yarn"),
		},
		Commands: []Command{restricted(command("spark", CommandActive, "type:spark"), tags("type:yarn"))},
	}
	_, err := Resolve(&req, cat, nil, nil)
	var re *ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("Resolve() error = %v, want a *ResolveError", err)
	}
	want := []string{"command spark, cluster criterion 0 [sched:prod]: " +
		"p1 is OUT_OF_SERVICE, p2 is TERMINATED, p3 is UP but command spark's cluster criteria [[type:yarn]] exclude it"}
	if !slices.Equal(re.Tried, want) {
		t.Errorf("Tried = %q\nwant    %q", re.Tried, want)
	}
}

func TestResolveMostFreeMemory(t *testing.T) {
	req := Request{Command: tags("type:exec"), Clusters: [][]string{tags("pool:a")}}
	cat := Catalog{
		Clusters: []Cluster{
			cluster("a1", ClusterUp, "pool:a"),
			cluster("a2", ClusterUp, "pool:a"),
			cluster("a3", ClusterUp, "pool:a"),
			cluster("b1", ClusterUp, "pool:b"),
		},
		Commands: []Command{command("exec", CommandActive, "type:exec")},
	}
	tests := []struct {
		free map[string]int64
		want string
	}{
		{map[string]int64{"a1": 10, "a2": 30, "a3": 20, "b1": 1000}, "a2"},
		{map[string]int64{"a1": 30, "a2": 10, "a3": 20}, "a1"},
		{map[string]int64{"a1": 10, "a2": 20, "a3": 30}, "a3"},
		{map[string]int64{"a1": -5, "a2": -1, "a3": -9}, "a2"}, // over-committed pools
		{map[string]int64{"a3": 1}, "a3"},
	}
	for _, tt := range tests {
		for seed := range uint64(20) {
			res, err := Resolve(&req, cat, freeOf(tt.free), rand.New(rand.NewPCG(seed, seed)))
			if err != nil {
				t.Fatalf("Resolve() error = %v", err)
			}
			if res.Cluster.Name != tt.want {
				t.Errorf("free %v, seed %d: chose %s, want %s", tt.free, seed, res.Cluster.Name, tt.want)
			}
		}
	}
	// The winning Cluster and Command are returned whole.
	res, _ := Resolve(&req, cat, freeOf(map[string]int64{"a1": 1}), nil)
	if !slices.Equal(res.Cluster.Tags, []string{"pool:a"}) || res.Command.Executable[0] != "/bin/exec" {
		t.Errorf("Resolve() = %+v", res)
	}
}

func TestResolveTiesAtRandom(t *testing.T) {
	req := Request{Command: tags("type:exec")}
	cat := Catalog{
		Clusters: []Cluster{
			cluster("low", ClusterUp),
			cluster("tie1", ClusterUp),
			cluster("down", ClusterOutOfService),
			cluster("tie2", ClusterUp),
			cluster("lower", ClusterUp),
		},
		Commands: []Command{command("exec", CommandActive, "type:exec")},
	}
	free := freeOf(map[string]int64{"low": 50, "tie1": 100, "down": 1000, "tie2": 100, "lower": 0})
	got := map[string]int{}
	for seed := range uint64(64) {
		res, err := Resolve(&req, cat, free, rand.New(rand.NewPCG(seed, seed)))
		if err != nil {
			t.Fatalf("Resolve() error = %v", err)
		}
		got[res.Cluster.Name]++
	}
	if got["tie1"] == 0 || got["tie2"] == 0 {
		t.Errorf("ties not broken at random over 64 seeds: %v", got)
	}
	if n := got["tie1"] + got["tie2"]; n != 64 {
		t.Errorf("a cluster outside the tie was chosen: %v", got)
	}
	// The same seed gives the same choice.
	a, _ := Resolve(&req, cat, free, rand.New(rand.NewPCG(7, 7)))
	b, _ := Resolve(&req, cat, free, rand.New(rand.NewPCG(7, 7)))
	if a.Cluster.Name != b.Cluster.Name {
		t.Errorf("same seed, different choice: %s, %s", a.Cluster.Name, b.Cluster.Name)
	}
}

func TestResolveWithoutFreeOrRand(t *testing.T) {
	// No free-memory source: every cluster ties; no rand: the first in catalog order.
	req := Request{Command: tags("type:exec")}
	cat := Catalog{
		Clusters: []Cluster{cluster("down", ClusterTerminated), cluster("b", ClusterUp), cluster("a", ClusterUp)},
		Commands: []Command{command("exec", CommandActive, "type:exec")},
	}
	res, err := Resolve(&req, cat, nil, nil)
	if err != nil || res.Cluster.Name != "b" || res.Criterion != -1 {
		t.Errorf("Resolve(nil, nil) = %s, %d, %v; want b, -1", res.Cluster.Name, res.Criterion, err)
	}
	// With rand but no free source, both UP clusters are reachable.
	seen := map[string]bool{}
	for seed := range uint64(32) {
		res, _ := Resolve(&req, cat, nil, rand.New(rand.NewPCG(seed, seed)))
		seen[res.Cluster.Name] = true
	}
	if !seen["a"] || !seen["b"] || seen["down"] {
		t.Errorf("chosen over 32 seeds: %v", seen)
	}
}

func TestResolveDoesNotReorderCatalog(t *testing.T) {
	cmds := []Command{command("b", CommandActive, "x"), command("a", CommandActive, "x")}
	cat := Catalog{Clusters: []Cluster{cluster("c", ClusterUp)}, Commands: cmds}
	if _, err := Resolve(&Request{Command: tags("x")}, cat, nil, nil); err != nil {
		t.Fatal(err)
	}
	if cmds[0].Name != "b" || cmds[1].Name != "a" {
		t.Errorf("Resolve sorted the caller's commands: %v, %v", cmds[0].Name, cmds[1].Name)
	}
}

// TestResolveAgainstReference checks Resolve on random catalogs against a
// brute-force restatement of the rule: the first active command in name order,
// then the first job criterion, with an UP cluster that the command allows and
// the criterion matches; among those, one with the most free memory.
func TestResolveAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	pickTags := func(n int) []string {
		var out []string
		for range rng.IntN(n + 1) {
			out = append(out, []string{"a", "b", "c", "d"}[rng.IntN(4)])
		}
		return out
	}
	crit := func() []string {
		c := pickTags(1)
		if len(c) == 0 || rng.IntN(5) == 0 {
			c = append(c, "name:"+[]string{"c0", "c1", "c2", "c3", "x0", "x1"}[rng.IntN(6)])
		}
		return c
	}
	cstatus := []ClusterStatus{ClusterUp, ClusterUp, ClusterOutOfService, ClusterTerminated}
	xstatus := []CommandStatus{CommandActive, CommandActive, CommandDeprecated, CommandInactive}
	resolved, fellBack, tied := 0, 0, 0
	for iter := range 3000 {
		var cat Catalog
		free := map[string]int64{}
		for i := range 1 + rng.IntN(4) {
			c := cluster("c"+string(rune('0'+i)), cstatus[rng.IntN(4)], pickTags(4)...)
			cat.Clusters = append(cat.Clusters, c)
			free[c.Name] = int64(rng.IntN(3))
		}
		for i := range 1 + rng.IntN(3) {
			x := command("x"+string(rune('0'+i)), xstatus[rng.IntN(4)], pickTags(2)...)
			for range rng.IntN(3) {
				x.ClusterCriteria = append(x.ClusterCriteria, crit())
			}
			cat.Commands = append(cat.Commands, x)
		}
		rng.Shuffle(len(cat.Commands), func(i, j int) { cat.Commands[i], cat.Commands[j] = cat.Commands[j], cat.Commands[i] })
		req := Request{Command: pickTags(1)}
		for range rng.IntN(3) {
			req.Clusters = append(req.Clusters, crit())
		}

		// The reference.
		cmds := slices.Clone(cat.Commands)
		slices.SortFunc(cmds, func(a, b Command) int { return strings.Compare(a.Name, b.Name) })
		var wantCmd string
		wantCrit := -2
		var wantClusters []string
	search:
		for _, x := range cmds {
			if x.Status != CommandActive || !Matches(x.Name, x.Tags, req.Command) {
				continue
			}
			crits := req.Clusters
			if len(crits) == 0 {
				crits = [][]string{nil} // matches every cluster
			}
			for ci, jc := range crits {
				var hits []Cluster
				for _, c := range cat.Clusters {
					allowed := len(x.ClusterCriteria) == 0 ||
						slices.ContainsFunc(x.ClusterCriteria, func(cc []string) bool { return Matches(c.Name, c.Tags, cc) })
					if c.Status == ClusterUp && allowed && Matches(c.Name, c.Tags, jc) {
						hits = append(hits, c)
					}
				}
				if len(hits) == 0 {
					continue
				}
				var most int64 = -1
				for _, c := range hits {
					most = max(most, free[c.Name])
				}
				for _, c := range hits {
					if free[c.Name] == most {
						wantClusters = append(wantClusters, c.Name)
					}
				}
				wantCmd, wantCrit = x.Name, ci
				if len(req.Clusters) == 0 {
					wantCrit = -1
				}
				break search
			}
		}

		res, err := Resolve(&req, cat, freeOf(free), rand.New(rand.NewPCG(uint64(iter), 0)))
		if wantCmd == "" {
			var re *ResolveError
			if !errors.As(err, &re) || len(re.Tried) == 0 {
				t.Fatalf("iter %d: Resolve() = %+v, %v; want a ResolveError\nreq %+v\ncat %+v", iter, res, err, req, cat)
			}
			continue
		}
		resolved++
		if wantCrit > 0 {
			fellBack++
		}
		if len(wantClusters) > 1 {
			tied++
		}
		if err != nil {
			t.Fatalf("iter %d: Resolve() error = %v; want %s on one of %v\nreq %+v\ncat %+v", iter, err, wantCmd, wantClusters, req, cat)
		}
		if res.Command.Name != wantCmd || res.Criterion != wantCrit || !slices.Contains(wantClusters, res.Cluster.Name) {
			t.Fatalf("iter %d: Resolve() = %s on %s (criterion %d); want %s on one of %v (criterion %d)\nreq %+v\ncat %+v",
				iter, res.Command.Name, res.Cluster.Name, res.Criterion, wantCmd, wantClusters, wantCrit, req, cat)
		}
	}
	t.Logf("%d of 3000 resolved, %d on a fallback criterion, %d among tied clusters", resolved, fellBack, tied)
	if resolved < 300 || resolved > 2700 || fellBack < 30 || tied < 30 {
		t.Errorf("the generator tests too little of some case: %d resolved, %d fell back, %d tied", resolved, fellBack, tied)
	}
}
