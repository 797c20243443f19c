package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/job"
)

// The autoscaler's state: what waits for each cluster, and one record per
// pool. Keys (keys.go):
//
//	waiting:memory         hash cluster → MiB of its QUEUED jobs
//	waiting:jobs           hash cluster → number of its QUEUED jobs
//	pool:<name>            hash: the pool's record (job.Pool) field by field
//	pool:<name>:decisions  list of JSON job.ScaleDecision, newest first
//	pools                  set of pool names
//
// The waiting counts are kept by set_status (scripts.go) in the same script
// as every status change, so reading them costs O(clusters) however many
// jobs wait. Redis is soft state: CheckWaiting compares them with the QUEUED
// index and RecountWaiting rebuilds them.

// ErrNoPool means the autoscaler has no record of the pool.
var ErrNoPool = errors.New("no such pool")

// DecisionsKept is how many decisions a pool's list keeps.
const DecisionsKept = 200

// Waiting is the work QUEUED for one cluster.
type Waiting struct {
	Memory int `json:"memory"` // MiB
	Jobs   int `json:"jobs"`
}

// Waiting returns the memory and number of the jobs QUEUED for each cluster.
func (s *Store) Waiting(ctx context.Context) (map[string]Waiting, error) {
	pipe := s.rdb.Pipeline()
	mem := pipe.HGetAll(ctx, s.k.waitingMemory())
	jobs := pipe.HGetAll(ctx, s.k.waitingJobs())
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read waiting jobs: %w", err)
	}
	out := map[string]Waiting{}
	for c, v := range jobs.Val() {
		if n := atoi(v); n > 0 {
			out[c] = Waiting{Jobs: n, Memory: max(atoi(mem.Val()[c]), 0)}
		}
	}
	return out, nil
}

// CheckWaiting returns the number of waiting jobs the counts hold and the
// number the QUEUED index holds; they differ only when Redis lost writes,
// or for the moment of a job's restore (recover.go writes no counts).
func (s *Store) CheckWaiting(ctx context.Context) (counted, indexed int, err error) {
	pipe := s.rdb.Pipeline()
	jobs := pipe.HVals(ctx, s.k.waitingJobs())
	card := pipe.ZCard(ctx, s.k.byStatus(job.Queued))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, fmt.Errorf("check waiting jobs: %w", err)
	}
	for _, v := range jobs.Val() {
		counted += atoi(v)
	}
	return counted, int(card.Val()), nil
}

// recountScript rebuilds the waiting counts from the QUEUED index, dropping
// index entries whose record is gone. It runs in one step, so no status
// change can slip between reading and writing; it takes about a millisecond
// per thousand waiting jobs.
//
//	ARGV: prefix
//	returns the number of waiting jobs counted
var recountScript = redis.NewScript(`
local prefix = ARGV[1]
local index = prefix .. 'jobs:status:QUEUED'
local memkey, jobskey = prefix .. 'waiting:memory', prefix .. 'waiting:jobs'
redis.call('DEL', memkey, jobskey)
local n = 0
for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local v = redis.call('HMGET', prefix .. 'job:' .. id, 'status', 'cluster', 'memory')
  if not v[1] then
    redis.call('ZREM', index, id)
  elseif v[1] == 'QUEUED' and v[2] then
    redis.call('HINCRBY', memkey, v[2], tonumber(v[3] or '0') or 0)
    redis.call('HINCRBY', jobskey, v[2], 1)
    n = n + 1
  end
end
return n
`)

// RecountWaiting rebuilds the waiting counts from the QUEUED index.
func (s *Store) RecountWaiting(ctx context.Context) (int, error) {
	n, err := recountScript.Run(ctx, s.rdb, nil, s.k.prefix).Int()
	if err != nil {
		return 0, fmt.Errorf("recount waiting jobs: %w", err)
	}
	return n, nil
}

// savePoolScript writes a pool's record, fenced by the leader's token like
// every write of the leader (recover.go): a leader older than the newest one
// that wrote is refused.
//
//	ARGV: prefix, name, token, decision JSON ("" = none to add), kept,
//	      field/value pairs...
//	returns "ok" or "stale-leader"
var savePoolScript = redis.NewScript(`
local prefix, name, token, decision, kept = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local tkey = prefix .. 'leader:token'
local cur = tonumber(redis.call('GET', tkey) or '0')
if tonumber(token) < cur then return 'stale-leader' end
redis.call('SET', tkey, token)
local key = prefix .. 'pool:' .. name
for i = 6, #ARGV, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', key, 'token', token)
if decision ~= '' then
  local list = key .. ':decisions'
  redis.call('LPUSH', list, decision)
  redis.call('LTRIM', list, 0, kept - 1)
end
redis.call('SADD', prefix .. 'pools', name)
return 'ok'
`)

// SavePool writes pool p's record as the leader holding token, and adds
// decision to its list when it is not nil. It fails with ErrStaleLeader when a
// newer leader has written.
func (s *Store) SavePool(ctx context.Context, token uint64, p *job.Pool, decision *job.ScaleDecision) error {
	if err := job.ValidateName("pool", p.Name); err != nil {
		return err
	}
	var dec string
	if decision != nil {
		b, err := json.Marshal(decision)
		if err != nil {
			return fmt.Errorf("encode decision of pool %s: %w", p.Name, err)
		}
		dec = string(b)
	}
	args := []any{s.k.prefix, p.Name, strconv.FormatUint(token, 10), dec, strconv.Itoa(DecisionsKept)}
	enc := func(field string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s of pool %s: %w", field, p.Name, err)
		}
		args = append(args, field, string(b))
		return nil
	}
	args = append(args, "name", p.Name, "provider", p.Provider, "size", strconv.Itoa(p.Size),
		"starting", strconv.Itoa(p.Starting), "desired", strconv.Itoa(p.Desired),
		"updated", strconv.FormatInt(p.Updated.UnixMicro(), 10))
	for _, f := range []struct {
		name string
		v    any
	}{{"clusters", p.Clusters}, {"policy", p.Policy}, {"draining", p.Draining}, {"last", p.Last}, {"history", p.History}} {
		if err := enc(f.name, f.v); err != nil {
			return err
		}
	}
	res, err := savePoolScript.Run(ctx, s.rdb, nil, args...).Text()
	if err != nil {
		return fmt.Errorf("save pool %s: %w", p.Name, err)
	}
	if res == "stale-leader" {
		return fmt.Errorf("save pool %s as leader %d: %w", p.Name, token, ErrStaleLeader)
	}
	return nil
}

// Pool reads a pool's record with up to decisions of its latest decisions.
func (s *Store) Pool(ctx context.Context, name string, decisions int) (*job.Pool, error) {
	if err := job.ValidateName("pool", name); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, s.k.pool(name))
	var list *redis.StringSliceCmd
	if decisions > 0 {
		list = pipe.LRange(ctx, s.k.poolDecisions(name), 0, int64(decisions)-1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read pool %s: %w", name, err)
	}
	if len(h.Val()) == 0 {
		return nil, fmt.Errorf("pool %s: %w", name, ErrNoPool)
	}
	p := decodePool(h.Val())
	if list != nil {
		for _, v := range list.Val() {
			var d job.ScaleDecision
			if json.Unmarshal([]byte(v), &d) == nil {
				p.Decisions = append(p.Decisions, d)
			}
		}
	}
	return p, nil
}

// Pools reads every pool's record, by name, each with up to decisions of its
// latest decisions.
func (s *Store) Pools(ctx context.Context, decisions int) ([]job.Pool, error) {
	names, err := s.rdb.SMembers(ctx, s.k.pools()).Result()
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	sort.Strings(names)
	out := make([]job.Pool, 0, len(names))
	for _, n := range names {
		p, err := s.Pool(ctx, n, decisions)
		if errors.Is(err, ErrNoPool) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

func decodePool(h map[string]string) *job.Pool {
	p := &job.Pool{
		Name:     h["name"],
		Provider: h["provider"],
		Size:     atoi(h["size"]),
		Starting: atoi(h["starting"]),
		Desired:  atoi(h["desired"]),
	}
	if t := micros(h["updated"]); t != nil {
		p.Updated = *t
	}
	dec := func(field string, v any) {
		if s := h[field]; s != "" {
			_ = json.Unmarshal([]byte(s), v)
		}
	}
	dec("clusters", &p.Clusters)
	dec("policy", &p.Policy)
	dec("draining", &p.Draining)
	dec("last", &p.Last)
	dec("history", &p.History)
	return p
}
