package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// waitLimit bounds every wait for a change to arrive through a watch.
const waitLimit = 10 * time.Second

// newBucket starts an embedded NATS server with JetStream and returns a new
// jinn_config bucket on it. Everything stops when the test ends.
func newBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(waitLimit) {
		t.Fatal("embedded NATS server did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "jinn_config", History: 5})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func openRegistry(t *testing.T, kv jetstream.KeyValue) *store.Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel() // the registry keeps watching after the context of its opening ends
	r, err := store.OpenRegistry(ctx, kv, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// changes returns a channel that receives a value after each change r sees;
// it never blocks the registry (one pending signal is enough).
func changes(r *store.Registry) <-chan struct{} {
	ch := make(chan struct{}, 1)
	r.OnChange(func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch
}

// await waits, change by change, until cond holds.
func await(t *testing.T, ch <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitLimit)
	for !cond() {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func clusterNames(cs []job.Cluster) string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return strings.Join(names, " ")
}

func TestRegistryClusters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := openRegistry(t, newBucket(t))
	if cs := r.Clusters(); len(cs) != 0 {
		t.Fatalf("Clusters of an empty bucket = %v", cs)
	}

	spark := job.Cluster{Name: "spark", Tags: []string{"type:spark", "sched:adhoc"}, Env: map[string]string{"SPARK_HOME": "/opt/spark"}}
	rev, err := r.PutCluster(ctx, spark, 0)
	if err != nil || rev == 0 {
		t.Fatalf("PutCluster = %d, %v", rev, err)
	}
	// Read your writes: no wait for the watch.
	got, gotRev, err := r.Cluster("spark")
	if err != nil || gotRev != rev {
		t.Fatalf("Cluster(spark) right after Put = rev %d, %v; want rev %d", gotRev, err, rev)
	}
	if got.Status != job.ClusterUp || !slices.Equal(got.Tags, spark.Tags) || got.Env["SPARK_HOME"] != "/opt/spark" {
		t.Errorf("Cluster(spark) = %+v (want the default status UP filled in)", got)
	}
	if _, err := r.PutCluster(ctx, job.Cluster{Name: "local"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutCluster(ctx, job.Cluster{Name: "adhoc"}, 0); err != nil {
		t.Fatal(err)
	}
	if got := clusterNames(r.Clusters()); got != "adhoc local spark" {
		t.Errorf("Clusters = %q, want sorted by name", got)
	}
	if got := clusterNames(r.Catalog().Clusters); got != "adhoc local spark" {
		t.Errorf("Catalog().Clusters = %q", got)
	}

	// Read-modify-write at the revision read.
	got.Status = job.ClusterOutOfService
	rev2, err := r.PutCluster(ctx, got, gotRev)
	if err != nil || rev2 <= rev {
		t.Fatalf("PutCluster at rev %d = %d, %v", gotRev, rev2, err)
	}
	if c, _, _ := r.Cluster("spark"); c.Status != job.ClusterOutOfService {
		t.Errorf("status after the update = %s", c.Status)
	}
	// The revision read before that update is stale now.
	got.Status = job.ClusterTerminated
	if _, err := r.PutCluster(ctx, got, gotRev); !errors.Is(err, store.ErrRevision) {
		t.Errorf("PutCluster at a stale revision: %v, want ErrRevision", err)
	}
	if c, _, _ := r.Cluster("spark"); c.Status != job.ClusterOutOfService {
		t.Errorf("a refused write changed the cluster: %s", c.Status)
	}
	// A revision of an entity that does not exist is stale too.
	if _, err := r.PutCluster(ctx, job.Cluster{Name: "ghost"}, rev2); !errors.Is(err, store.ErrRevision) {
		t.Errorf("PutCluster of a new cluster at rev %d: %v, want ErrRevision", rev2, err)
	}

	if err := r.Delete(ctx, store.KindCluster, "spark"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Cluster("spark"); !errors.Is(err, store.ErrNoEntity) {
		t.Errorf("Cluster(spark) after Delete: %v, want ErrNoEntity", err)
	}
	if got := clusterNames(r.Clusters()); got != "adhoc local" {
		t.Errorf("Clusters after Delete = %q", got)
	}
	if err := r.Delete(ctx, store.KindCluster, "spark"); !errors.Is(err, store.ErrNoEntity) {
		t.Errorf("second Delete: %v, want ErrNoEntity", err)
	}
	if _, _, err := r.Cluster("never"); !errors.Is(err, store.ErrNoEntity) {
		t.Errorf("Cluster(never): %v, want ErrNoEntity", err)
	}
	// A deleted name may be used again.
	if _, err := r.PutCluster(ctx, job.Cluster{Name: "spark"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Cluster("spark"); err != nil {
		t.Errorf("Cluster(spark) after it was put again: %v", err)
	}
}

func TestRegistryCommandsAndApplications(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := openRegistry(t, newBucket(t))
	cmd := job.Command{Name: "spark-submit", Tags: []string{"type:spark"}, Executable: []string{"/opt/spark/bin/spark-submit"},
		Memory: 2048, ClusterCriteria: [][]string{{"type:spark"}}, Applications: []string{"spark"}}
	rev, err := r.PutCommand(ctx, cmd, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, gotRev, err := r.Command("spark-submit")
	if err != nil || gotRev != rev {
		t.Fatalf("Command = rev %d, %v; want rev %d", gotRev, err, rev)
	}
	if got.Status != job.CommandActive || got.Memory != 2048 || !slices.Equal(got.Executable, cmd.Executable) {
		t.Errorf("Command = %+v", got)
	}
	if _, err := r.PutCommand(ctx, job.Command{Name: "echo", Executable: []string{"echo"}}, 0); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range r.Commands() {
		names = append(names, c.Name)
	}
	if strings.Join(names, " ") != "echo spark-submit" {
		t.Errorf("Commands = %v", names)
	}
	if n := len(r.Catalog().Commands); n != 2 {
		t.Errorf("Catalog has %d commands, want 2", n)
	}
	got.Status = job.CommandDeprecated
	if _, err := r.PutCommand(ctx, got, gotRev); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutCommand(ctx, got, gotRev); !errors.Is(err, store.ErrRevision) {
		t.Errorf("PutCommand at a stale revision: %v, want ErrRevision", err)
	}

	app := job.Application{Name: "spark", Files: []string{"s3://bucket/spark.tgz"}, Setup: "s3://bucket/setup-spark.sh"}
	if _, err := r.PutApplication(ctx, app, 0); err != nil {
		t.Fatal(err)
	}
	gotApp, _, err := r.Application("spark")
	if err != nil || gotApp.Setup != app.Setup || !slices.Equal(gotApp.Files, app.Files) {
		t.Errorf("Application = %+v, %v", gotApp, err)
	}
	if apps := r.Applications(); len(apps) != 1 || apps[0].Name != "spark" {
		t.Errorf("Applications = %+v", apps)
	}
	// Kinds are separate name spaces: the cluster "spark" is not the application.
	if _, _, err := r.Cluster("spark"); !errors.Is(err, store.ErrNoEntity) {
		t.Errorf("Cluster(spark): %v, want ErrNoEntity", err)
	}
	if err := r.Delete(ctx, store.KindApplication, "spark"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Application("spark"); !errors.Is(err, store.ErrNoEntity) {
		t.Errorf("Application after Delete: %v", err)
	}
	if err := r.Delete(ctx, store.KindCommand, "echo"); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Commands()); n != 1 {
		t.Errorf("%d commands after Delete, want 1", n)
	}
}

func TestRegistryValidates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := newBucket(t)
	r := openRegistry(t, kv)
	for _, tc := range []struct {
		name  string
		put   func() error
		field string
	}{
		{"cluster name", func() error { _, err := r.PutCluster(ctx, job.Cluster{Name: "Bad.Name"}, 0); return err }, "name"},
		{"cluster status", func() error {
			_, err := r.PutCluster(ctx, job.Cluster{Name: "c", Status: "DOWN"}, 0)
			return err
		}, "status"},
		{"command name", func() error { _, err := r.PutCommand(ctx, job.Command{Name: ""}, 0); return err }, "name"},
		{"command memory", func() error {
			_, err := r.PutCommand(ctx, job.Command{Name: "c", Memory: -1}, 0)
			return err
		}, "memory"},
		{"application name", func() error {
			_, err := r.PutApplication(ctx, job.Application{Name: "a b"}, 0)
			return err
		}, "name"},
	} {
		err := tc.put()
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a *job.FieldError on %q", tc.name, err, tc.field)
		}
	}
	if _, err := kv.Keys(ctx); !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Errorf("invalid entities reached the bucket (%v)", err)
	}
}

// TestRegistrySeesOtherWriters: a change made through a second registry on
// the same bucket reaches the first through its watch.
func TestRegistrySeesOtherWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := newBucket(t)
	r1 := openRegistry(t, kv)
	seen := changes(r1)
	r2 := openRegistry(t, kv)

	rev, err := r2.PutCluster(ctx, job.Cluster{Name: "spark", Tags: []string{"type:spark"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	await(t, seen, "r1 sees the new cluster", func() bool {
		_, got, err := r1.Cluster("spark")
		return err == nil && got == rev
	})

	// r1 updates at the revision it saw; r2 sees that in turn.
	seen2 := changes(r2)
	c, rev, _ := r1.Cluster("spark")
	c.Status = job.ClusterOutOfService
	rev1, err := r1.PutCluster(ctx, c, rev)
	if err != nil {
		t.Fatal(err)
	}
	await(t, seen2, "r2 sees r1's update", func() bool {
		c, got, _ := r2.Cluster("spark")
		return got == rev1 && c.Status == job.ClusterOutOfService
	})
	// r2 writing at the revision before r1's update is refused.
	if _, err := r2.PutCluster(ctx, job.Cluster{Name: "spark"}, rev); !errors.Is(err, store.ErrRevision) {
		t.Errorf("PutCluster at the stale revision %d: %v, want ErrRevision", rev, err)
	}

	if err := r2.Delete(ctx, store.KindCluster, "spark"); err != nil {
		t.Fatal(err)
	}
	await(t, seen, "r1 sees the delete", func() bool {
		_, _, err := r1.Cluster("spark")
		return errors.Is(err, store.ErrNoEntity)
	})
	if cs := r1.Clusters(); len(cs) != 0 {
		t.Errorf("r1 still lists %v", cs)
	}
}

// TestRegistryDeleteAndPutAgain: an entity deleted and put again at once is
// visible to the registry that did both, whatever the watch delivered
// meanwhile.
func TestRegistryDeleteAndPutAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := newBucket(t)
	r := openRegistry(t, kv)
	other := openRegistry(t, kv)
	seen := changes(other)
	for i := range 25 {
		rev, err := r.PutCluster(ctx, job.Cluster{Name: "spark", Description: fmt.Sprint(i)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if c, got, err := r.Cluster("spark"); err != nil || got != rev || c.Description != fmt.Sprint(i) {
			t.Fatalf("round %d: Cluster after Put = %+v rev %d, %v; want rev %d", i, c, got, err, rev)
		}
		if err := r.Delete(ctx, store.KindCluster, "spark"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Cluster("spark"); !errors.Is(err, store.ErrNoEntity) {
			t.Fatalf("round %d: Cluster after Delete: %v", i, err)
		}
	}
	rev, err := r.PutCluster(ctx, job.Cluster{Name: "spark", Description: "last"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	await(t, seen, "the other registry sees the last put", func() bool {
		c, got, _ := other.Cluster("spark")
		return got == rev && c.Description == "last"
	})
	if c, got, _ := r.Cluster("spark"); got != rev || c.Description != "last" {
		t.Errorf("writer's copy: %+v rev %d, want rev %d", c, got, rev)
	}
}

// TestRegistryLoads: a registry opened on a bucket with entries has them
// all before OpenRegistry returns, deleted ones excluded.
func TestRegistryLoads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := newBucket(t)
	w := openRegistry(t, kv)
	for i := range 20 {
		if _, err := w.PutCluster(ctx, job.Cluster{Name: fmt.Sprintf("c%02d", i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Delete(ctx, store.KindCluster, "c07"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "cluster.broken", []byte("{not json")); err != nil {
		t.Fatal(err)
	}

	r := openRegistry(t, kv)
	cs := r.Clusters()
	if len(cs) != 19 {
		t.Errorf("a new registry has %d clusters, want 19: %s", len(cs), clusterNames(cs))
	}
	if _, _, err := r.Cluster("c07"); !errors.Is(err, store.ErrNoEntity) {
		t.Errorf("deleted cluster: %v, want ErrNoEntity", err)
	}
	// A bad entry is skipped in lists and reported when asked for.
	if _, _, err := r.Cluster("broken"); err == nil || errors.Is(err, store.ErrNoEntity) {
		t.Errorf("Cluster(broken): %v, want a decode error", err)
	}
}

// TestRegistryOutlivesOpenContext: the context given to OpenRegistry bounds
// the initial load only; the registry follows the bucket until Close.
func TestRegistryOutlivesOpenContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := newBucket(t)
	openCtx, cancel := context.WithCancel(ctx)
	r, err := store.OpenRegistry(openCtx, kv, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	seen := changes(r)
	cancel()

	w := openRegistry(t, kv)
	for i := range 3 {
		name := fmt.Sprintf("late%d", i)
		if _, err := w.PutCluster(ctx, job.Cluster{Name: name}, 0); err != nil {
			t.Fatal(err)
		}
		await(t, seen, "the registry sees "+name+" after its open context ended", func() bool {
			_, _, err := r.Cluster(name)
			return err == nil
		})
	}
}

// TestRegistryClose: after Close the registry stops following and OnChange
// callbacks stop; reads still answer from the copy.
func TestRegistryClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := newBucket(t)
	r := openRegistry(t, kv)
	if _, err := r.PutCluster(ctx, job.Cluster{Name: "spark"}, 0); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close() // twice is harmless
	if _, _, err := r.Cluster("spark"); err != nil {
		t.Errorf("Cluster after Close: %v", err)
	}
}
