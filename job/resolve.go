package job

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
)

// Catalog is the configuration resolution reads: clusters and commands.
type Catalog struct {
	Clusters []Cluster
	Commands []Command
}

// Resolution is where and how a request runs.
type Resolution struct {
	Cluster Cluster
	Command Command
	// Criterion is the index of the job's cluster criterion that matched, or -1
	// when the job named none.
	Criterion int
}

// ResolveError says why a request cannot be placed and what was tried.
type ResolveError struct {
	Tried []string
}

func (e *ResolveError) Error() string {
	return "no cluster and command can run this job: " + strings.Join(e.Tried, "; ")
}

// Matches reports whether an entity with the given name and tags satisfies a
// criterion: every tag of the criterion is one of its tags. Every entity also
// carries the implicit tag "name:<its name>".
func Matches(name string, tags, criterion []string) bool {
	for _, want := range criterion {
		if want == "name:"+name {
			continue
		}
		if !slices.Contains(tags, want) {
			return false
		}
	}
	return true
}

// Resolve places a request as Genie does. The ACTIVE commands matching the
// command criterion are tried in name order; for each, the clusters it may
// run on are those UP clusters matching one of its own cluster criteria (any
// UP cluster when it has none); the job's cluster criteria are then tried in
// priority order and the first that matches at least one of those clusters
// wins. Among several matching clusters the one whose pool has the most free
// memory (free reports MiB) wins, ties broken at random by rnd.
//
// An empty status counts as its default (UP, ACTIVE), as Validate fills it in.
// When nothing fits, the *ResolveError lists every command and criterion tried
// and why each failed, so that a user knows what to change.
func Resolve(req *Request, cat Catalog, free func(cluster string) int64, rnd *rand.Rand) (Resolution, error) {
	var tried []string
	commands := slices.Clone(cat.Commands)
	sort.SliceStable(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })

	for _, cmd := range commands {
		if !Matches(cmd.Name, cmd.Tags, req.Command) {
			continue
		}
		if st := commandStatus(cmd); st != CommandActive {
			tried = append(tried, fmt.Sprintf("command %s is %s", cmd.Name, st))
			continue
		}
		candidates := commandClusters(cmd, cat.Clusters)
		if len(candidates) == 0 {
			tried = append(tried, fmt.Sprintf("command %s: %s", cmd.Name, whyNoCommandCluster(cmd, cat.Clusters)))
			continue
		}
		if len(req.Clusters) == 0 {
			return Resolution{Cluster: pick(candidates, free, rnd), Command: cmd, Criterion: -1}, nil
		}
		for i, crit := range req.Clusters {
			var hits []Cluster
			for _, c := range candidates {
				if Matches(c.Name, c.Tags, crit) {
					hits = append(hits, c)
				}
			}
			if len(hits) > 0 {
				return Resolution{Cluster: pick(hits, free, rnd), Command: cmd, Criterion: i}, nil
			}
			tried = append(tried, fmt.Sprintf("command %s, cluster criterion %d %v: %s", cmd.Name, i, crit, whyNoCluster(cmd, crit, cat.Clusters)))
		}
	}
	if len(tried) == 0 {
		tried = append(tried, fmt.Sprintf("no command has tags %v", req.Command))
	}
	return Resolution{}, &ResolveError{Tried: tried}
}

// clusterStatus is c's status, UP when unset.
func clusterStatus(c Cluster) ClusterStatus {
	if c.Status == "" {
		return ClusterUp
	}
	return c.Status
}

// commandStatus is c's status, ACTIVE when unset.
func commandStatus(c Command) CommandStatus {
	if c.Status == "" {
		return CommandActive
	}
	return c.Status
}

// allows reports whether cmd's own cluster criteria admit c (no criteria: any).
func allows(cmd Command, c Cluster) bool {
	if len(cmd.ClusterCriteria) == 0 {
		return true
	}
	for _, crit := range cmd.ClusterCriteria {
		if Matches(c.Name, c.Tags, crit) {
			return true
		}
	}
	return false
}

// commandClusters returns the UP clusters a command may run on.
func commandClusters(cmd Command, clusters []Cluster) []Cluster {
	var out []Cluster
	for _, c := range clusters {
		if clusterStatus(c) == ClusterUp && allows(cmd, c) {
			out = append(out, c)
		}
	}
	return out
}

// whyNoCommandCluster explains why a command has no UP cluster to run on.
func whyNoCommandCluster(cmd Command, clusters []Cluster) string {
	var down []string
	for _, c := range clusters {
		if allows(cmd, c) {
			down = append(down, c.Name+" is "+string(clusterStatus(c)))
		}
	}
	sort.Strings(down)
	switch {
	case len(cmd.ClusterCriteria) == 0 && len(clusters) == 0:
		return "no cluster is defined"
	case len(cmd.ClusterCriteria) == 0:
		return "no cluster is UP (" + strings.Join(down, ", ") + ")"
	case len(down) == 0:
		return fmt.Sprintf("no cluster matches its cluster criteria %v", cmd.ClusterCriteria)
	}
	return fmt.Sprintf("no UP cluster matches its cluster criteria %v (%s)", cmd.ClusterCriteria, strings.Join(down, ", "))
}

// whyNoCluster explains, for each cluster with the criterion's tags, why it
// cannot take the job: it is not UP, or the command's own criteria exclude it.
func whyNoCluster(cmd Command, crit []string, clusters []Cluster) string {
	var why []string
	for _, c := range clusters {
		if !Matches(c.Name, c.Tags, crit) {
			continue
		}
		st := clusterStatus(c)
		switch {
		case st != ClusterUp:
			why = append(why, c.Name+" is "+string(st))
		case !allows(cmd, c):
			why = append(why, fmt.Sprintf("%s is UP but command %s's cluster criteria %v exclude it", c.Name, cmd.Name, cmd.ClusterCriteria))
		}
	}
	if len(why) == 0 {
		return "no cluster has these tags"
	}
	sort.Strings(why)
	return strings.Join(why, ", ")
}

// pick returns the cluster with the most free memory, ties at random.
func pick(cs []Cluster, free func(string) int64, rnd *rand.Rand) Cluster {
	if len(cs) == 1 {
		return cs[0]
	}
	best := []Cluster{}
	var bestFree int64
	for _, c := range cs {
		var f int64
		if free != nil {
			f = free(c.Name)
		}
		switch {
		case len(best) == 0 || f > bestFree:
			best, bestFree = []Cluster{c}, f
		case f == bestFree:
			best = append(best, c)
		}
	}
	if len(best) == 1 || rnd == nil {
		return best[0]
	}
	return best[rnd.IntN(len(best))]
}
