package main

import (
	"net/http"
	"strings"
	"testing"
)

const poolJSON = `{"name":"default","provider":"local","clusters":["local"],
	"policy":{"min":1,"max":3,"high":0.6,"low":0.3,"window":60000000000,"downWindow":600000000000,"upCooldown":120000000000,"downCooldown":300000000000,"warmUp":60000000000,"step":1,"gap":30000000000},
	"size":2,"starting":1,"desired":3,"draining":["w9"],
	"last":{"time":"2030-01-02T03:04:00Z","action":"up","rule":"waiting","reason":"1 waiting job (700 MiB) fit in no worker's free 300 MiB for 1m0s; they need 1 more worker: 2 → 3 workers","size":2,"desired":3,
		"inputs":{"active":2,"warm":2,"allowance":2000,"reserved":1700,"used":900,"free":300,"load":0.85,"warmLoad":0.85,"waitingMemory":700,"waitingJobs":1,"unplaced":1}},
	"updated":"2030-01-02T03:04:00Z"`

func TestPools(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"GET /pools?decisions=0": {ok(`{"pools":[` + poolJSON + `}]}`)},
	})
	out, _, err := run(t, "", "pools")
	if err != nil {
		t.Fatal(err)
	}
	want := "POOL     PROVIDER  SIZE  DESIRED  STARTING  DRAINING  LOAD             WAITING      LAST        AGE  REASON\n" +
		"default  local     2     3        1         1         85% of 2000 MiB  1 (700 MiB)  up/waiting  5s   1 waiting job (700 MiB) fit in no worker's free 300 MiB for 1m0s; they need 1 more worker: 2 → 3 workers\n"
	if out != want {
		t.Errorf("table =\n%s\nwant\n%s", out, want)
	}
}

func TestPoolDecisions(t *testing.T) {
	cleanEnv(t)
	newFake(t, map[string][]reply{
		"GET /pools/default?decisions=20": {ok(poolJSON + `,"decisions":[
			{"time":"2030-01-02T03:04:00Z","action":"up","rule":"waiting","reason":"r2","size":2,"desired":3,"inputs":{"allowance":2000,"load":0.85,"waitingMemory":700,"waitingJobs":1}},
			{"time":"2030-01-02T03:00:00Z","action":"down","rule":"low","reason":"r1","size":3,"desired":2,"drain":"w9","inputs":{"allowance":3000,"load":0.1}, "error":"drain worker w9: no answer"}]}`)},
		"GET /pools/nope?decisions=20": {apiError(http.StatusNotFound, "not_found", "the autoscaler has no pool nope")},
	})
	out, _, err := run(t, "", "pools", "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"size:     2 active, 1 starting, 1 (w9) draining; desired 3 (min 1, max 3)",
		"policy:   up above 60% for 1m0s (cooldown 2m0s, step 1); down below 30% for 10m0s (cooldown 5m0s); warm-up 1m0s",
		"load:     85% of 2000 MiB (warm 85%); reserved 1700, used 900, free 300 MiB",
		"waiting:  1 (700 MiB), 1 fit nowhere",
		"TIME                 DECISION    SIZE  DESIRED  LOAD             WAITING      DRAIN  REASON",
		"2030-01-02 03:04:00  up/waiting  2     3        85% of 2000 MiB  1 (700 MiB)  -      r2",
		"2030-01-02 03:00:00  down/low    3     2        10% of 3000 MiB  0            w9     r1 (error: drain worker w9: no answer)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := run(t, "", "pools", "nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown pool: %v", err)
	}
}
