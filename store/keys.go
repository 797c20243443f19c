package store

import "github.com/jinn-fleet/jinn/job"

// keys builds every Redis key jinn uses; no key is spelled anywhere else.
// The Lua scripts receive the prefix and build the same names (see scripts.go).
type keys struct{ prefix string }

func (k keys) job(id string) string            { return k.prefix + "job:" + id }
func (k keys) jobHistory(id string) string     { return k.prefix + "job:" + id + ":history" }
func (k keys) all() string                     { return k.prefix + "jobs:all" }
func (k keys) byUser(user string) string       { return k.prefix + "jobs:user:" + user }
func (k keys) byCluster(cluster string) string { return k.prefix + "jobs:cluster:" + cluster }
func (k keys) byStatus(s job.Status) string    { return k.prefix + "jobs:status:" + string(s) }
func (k keys) active() string                  { return k.prefix + "jobs:active" }
func (k keys) activeByUser(user string) string { return k.prefix + "jobs:active:user:" + user }
func (k keys) worker(id string) string         { return k.prefix + "worker:" + id }
func (k keys) alive(id string) string          { return k.prefix + "alive:" + id }
func (k keys) workers() string                 { return k.prefix + "workers" }

// The autoscaler's keys (pools.go). A pool name never holds ':', so a pool's
// decisions list cannot be another pool's record.
func (k keys) pool(name string) string          { return k.prefix + "pool:" + name }
func (k keys) poolDecisions(name string) string { return k.prefix + "pool:" + name + ":decisions" }
func (k keys) pools() string                    { return k.prefix + "pools" }
func (k keys) waitingMemory() string            { return k.prefix + "waiting:memory" }
func (k keys) waitingJobs() string              { return k.prefix + "waiting:jobs" }
