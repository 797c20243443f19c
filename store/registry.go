package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/job"
)

// Kinds of configuration entity; a key in jinn_config is "<kind>.<name>".
const (
	KindCluster     = "cluster"
	KindCommand     = "command"
	KindApplication = "application"
)

// ErrNoEntity means no entity of that kind and name exists.
var ErrNoEntity = errors.New("not found")

// ErrRevision means the entity changed since the revision the caller read.
var ErrRevision = errors.New("changed since it was read")

// Registry holds clusters, commands and applications in the jinn_config KV
// bucket, with an in-memory copy kept current by a watch, so that admission
// reads them without a round trip. Writes update the copy at once, so a
// writer reads its own writes.
type Registry struct {
	kv  jetstream.KeyValue
	log hclog.Logger

	mu      sync.RWMutex
	entries map[string]entry // by key
	ready   chan struct{}
	watch   jetstream.KeyWatcher
	stop    context.CancelFunc // ends the watch's context
	notify  []func()
}

type entry struct {
	rev  uint64
	data []byte
}

// OpenRegistry loads the bucket and watches it until Close. ctx bounds the
// loading only.
func OpenRegistry(ctx context.Context, kv jetstream.KeyValue, log hclog.Logger) (*Registry, error) {
	c := &Registry{kv: kv, log: log, entries: map[string]entry{}, ready: make(chan struct{})}
	// The watch ends when its context does: it must not end with ctx, which
	// is often a start-up context with a timeout.
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	w, err := kv.WatchAll(wctx)
	if err != nil {
		stop()
		return nil, fmt.Errorf("watch %s: %w", kv.Bucket(), err)
	}
	c.watch, c.stop = w, stop
	go c.follow()
	select {
	case <-c.ready:
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("load %s: %w", kv.Bucket(), ctx.Err())
	}
}

// Close stops the watch.
func (c *Registry) Close() {
	_ = c.watch.Stop()
	c.stop()
}

func (c *Registry) follow() {
	initial := true
	for e := range c.watch.Updates() {
		if e == nil { // end of the initial values
			if initial {
				initial = false
				close(c.ready)
			}
			continue
		}
		c.apply(e.Key(), e.Revision(), e.Value(), e.Operation() != jetstream.KeyValuePut)
	}
}

// apply records the entry of key at revision rev, unless the copy knows a
// later one. A deletion at the revision of the copy's entry is the deletion
// of that entry (see del) and applies.
func (c *Registry) apply(key string, rev uint64, data []byte, deleted bool) {
	c.mu.Lock()
	if cur, ok := c.entries[key]; ok && (cur.rev > rev || cur.rev == rev && !(deleted && cur.data != nil)) {
		c.mu.Unlock()
		return
	}
	if deleted {
		data = nil // a tombstone keeps a late update from resurrecting it
	}
	c.entries[key] = entry{rev: rev, data: data}
	notify := c.notify
	c.mu.Unlock()
	for _, fn := range notify {
		fn()
	}
}

// OnChange registers fn to be called after every change of an entity. It runs
// on the watch goroutine or the writer's: keep it short and non-blocking.
func (c *Registry) OnChange(fn func()) {
	c.mu.Lock()
	c.notify = append(c.notify, fn)
	c.mu.Unlock()
}

func list[T any](c *Registry, kind string) []T {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var keys []string
	for k, e := range c.entries {
		if e.data != nil && strings.HasPrefix(k, kind+".") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		var v T
		if err := json.Unmarshal(c.entries[k].data, &v); err != nil {
			c.log.Warn("bad configuration entry", "key", k, "error", err)
			continue
		}
		out = append(out, v)
	}
	return out
}

func get[T any](c *Registry, kind, name string) (T, uint64, error) {
	var v T
	c.mu.RLock()
	e, ok := c.entries[kind+"."+name]
	c.mu.RUnlock()
	if !ok || e.data == nil {
		return v, 0, fmt.Errorf("%s %s: %w", kind, name, ErrNoEntity)
	}
	if err := json.Unmarshal(e.data, &v); err != nil {
		return v, 0, fmt.Errorf("decode %s %s: %w", kind, name, err)
	}
	return v, e.rev, nil
}

// put writes an entity. With rev > 0 the write succeeds only if the entity is
// still at that revision (for read-modify-write such as PATCH).
func (c *Registry) put(ctx context.Context, kind, name string, v any, rev uint64) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s %s: %w", kind, name, err)
	}
	key := kind + "." + name
	var newRev uint64
	if rev > 0 {
		newRev, err = c.kv.Update(ctx, key, data, rev)
	} else {
		newRev, err = c.kv.Put(ctx, key, data)
	}
	if err != nil {
		// A replicated bucket reports the conflict as ErrKeyRevisionMismatch
		// only; a single server as both.
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("%s %s: %w", kind, name, ErrRevision)
		}
		return 0, fmt.Errorf("write %s %s: %w", kind, name, err)
	}
	c.apply(key, newRev, data, false)
	return newRev, nil
}

func (c *Registry) del(ctx context.Context, kind, name string) error {
	key := kind + "." + name
	_, rev, err := get[json.RawMessage](c, kind, name)
	if err != nil {
		return err
	}
	if err := c.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, name, err)
	}
	// The delete's own revision is unknown (Delete does not return it), and
	// a guess could equal the revision of the next put and hide it. The
	// tombstone takes the revision it deletes; the watch brings the real one.
	c.apply(key, rev, nil, true)
	return nil
}

// Clusters lists every cluster by name.
func (c *Registry) Clusters() []job.Cluster { return list[job.Cluster](c, KindCluster) }

// Commands lists every command by name.
func (c *Registry) Commands() []job.Command { return list[job.Command](c, KindCommand) }

// Applications lists every application by name.
func (c *Registry) Applications() []job.Application {
	return list[job.Application](c, KindApplication)
}

// Catalog is what resolution reads.
func (c *Registry) Catalog() job.Catalog {
	return job.Catalog{Clusters: c.Clusters(), Commands: c.Commands()}
}

// Cluster reads one cluster and its revision.
func (c *Registry) Cluster(name string) (job.Cluster, uint64, error) {
	return get[job.Cluster](c, KindCluster, name)
}

// Command reads one command and its revision.
func (c *Registry) Command(name string) (job.Command, uint64, error) {
	return get[job.Command](c, KindCommand, name)
}

// Application reads one application and its revision.
func (c *Registry) Application(name string) (job.Application, uint64, error) {
	return get[job.Application](c, KindApplication, name)
}

// PutCluster creates or replaces a cluster (rev > 0: only from that revision).
func (c *Registry) PutCluster(ctx context.Context, v job.Cluster, rev uint64) (uint64, error) {
	if err := v.Validate(); err != nil {
		return 0, err
	}
	return c.put(ctx, KindCluster, v.Name, v, rev)
}

// PutCommand creates or replaces a command (rev > 0: only from that revision).
func (c *Registry) PutCommand(ctx context.Context, v job.Command, rev uint64) (uint64, error) {
	if err := v.Validate(); err != nil {
		return 0, err
	}
	return c.put(ctx, KindCommand, v.Name, v, rev)
}

// PutApplication creates or replaces an application.
func (c *Registry) PutApplication(ctx context.Context, v job.Application, rev uint64) (uint64, error) {
	if err := v.Validate(); err != nil {
		return 0, err
	}
	return c.put(ctx, KindApplication, v.Name, v, rev)
}

// Delete removes an entity of a kind.
func (c *Registry) Delete(ctx context.Context, kind, name string) error {
	return c.del(ctx, kind, name)
}
