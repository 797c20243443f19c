package job

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkResolve places a request in a catalog of 100 commands × 100
// clusters whose first two cluster criteria match nothing, so resolution
// walks every command's clusters three times, as a fallback request does.
func BenchmarkResolve(b *testing.B) {
	var cat Catalog
	for i := range 100 {
		cat.Clusters = append(cat.Clusters, cluster(fmt.Sprintf("c%03d", i), ClusterUp, "sched:adhoc", fmt.Sprintf("zone:%d", i%10), fmt.Sprintf("id:%d", i)))
		cmd := command(fmt.Sprintf("cmd%03d", i), CommandActive, "type:spark", fmt.Sprintf("ver:%d", i))
		if i%2 == 0 {
			cmd = restricted(cmd, tags("sched:adhoc"))
		}
		cat.Commands = append(cat.Commands, cmd)
	}
	req := &Request{ID: "bench", Command: tags("type:spark", "ver:99"),
		Clusters: [][]string{tags("sched:nightly"), tags("zone:42"), tags("sched:adhoc", "zone:3")}}
	free := func(c string) int64 { return int64(len(c)) }
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		res, err := Resolve(req, cat, free, rnd)
		if err != nil || res.Command.Name != "cmd099" {
			b.Fatalf("resolve: %+v %v", res, err)
		}
	}
}
