package job

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func intp(n int) *int { return &n }

// validRequest returns a request that passes Validate with every field set.
func validRequest() Request {
	return Request{
		ID:       "job-1",
		Name:     "nightly etl",
		User:     "alice@example.com",
		Tags:     []string{"team:data", "sched:nightly"},
		Command:  []string{"type:spark", "ver:3.5"},
		Clusters: [][]string{{"sched:bonus"}, {"sched:prod", "type:yarn"}},
		Args:     []string{"--date", "2024-01-01", ""},
		Env:      map[string]string{"SPARK_OPTS": "-Xmx2g", "EMPTY": ""},
		Memory:   2048,
		Timeout:  3600,
		Retries:  intp(3),
		Metadata: json.RawMessage(`{"owner": "data", "n": [1, 2]}`),
	}
}

func TestRequestValidateAcceptsGood(t *testing.T) {
	good := []func(*Request){
		func(r *Request) {},
		func(r *Request) { *r = Request{Command: []string{"type:exec"}} }, // the minimum
		func(r *Request) { r.ID = "" },
		func(r *Request) { r.User = "" },
		func(r *Request) { r.Name = strings.Repeat("n", 256) },
		func(r *Request) { r.Name = "any thing. * > goes" }, // not a subject token
		func(r *Request) { r.Clusters = nil },
		func(r *Request) { r.Clusters = make([][]string, 32); fill(r.Clusters) },
		func(r *Request) { r.Args = make([]string, MaxArgs) },
		func(r *Request) { r.Memory = 0 },
		func(r *Request) { r.Memory = MaxMemoryMiB },
		func(r *Request) { r.Timeout = MaxTimeoutSec },
		func(r *Request) { r.Retries = intp(0) },
		func(r *Request) { r.Retries = intp(MaxRetries) },
		func(r *Request) { r.Metadata = nil },
		func(r *Request) { r.Metadata = json.RawMessage(`null`) },
		func(r *Request) { r.Metadata = json.RawMessage(`"text"`) },
		func(r *Request) { r.Dependencies = []string{"s3://my-bucket/a/b.jar", "file:///etc/hosts"} },
		func(r *Request) { r.Dependencies = []string{"s3://bkt/x.jar", "s3://bkt/x.jar"} }, // the same file twice
		func(r *Request) { r.Setup = "s3://bkt/setup.sh" },
		func(r *Request) { r.Notify = "https://hooks.example.com/jinn?team=data" },
		func(r *Request) { r.Notify = "http://127.0.0.1:8099/hook" },
		func(r *Request) {
			r.Notify = "https://h.example/" + strings.Repeat("p", MaxNotifyLen-len("https://h.example/"))
		},
		func(r *Request) {
			r.Attachments = []Attachment{{Name: "data.csv", URI: "s3://bkt/jobs/j/attachments/ab/data.csv", Size: 3}}
		},
	}
	for i, mut := range good {
		r := validRequest()
		mut(&r)
		if err := r.Validate(); err != nil {
			t.Errorf("case %d: Validate() = %v, want nil", i, err)
		}
	}
}

func fill(cs [][]string) {
	for i := range cs {
		cs[i] = []string{"c"}
	}
}

func TestRequestValidateRejectsBad(t *testing.T) {
	tests := []struct {
		name  string
		mut   func(*Request)
		field string
	}{
		{"id with dot", func(r *Request) { r.ID = "a.b" }, "id"},
		{"id wildcard", func(r *Request) { r.ID = "*" }, "id"},
		{"id gt", func(r *Request) { r.ID = ">" }, "id"},
		{"id space", func(r *Request) { r.ID = "a b" }, "id"},
		{"id too long", func(r *Request) { r.ID = strings.Repeat("a", 129) }, "id"},
		{"name too long", func(r *Request) { r.Name = strings.Repeat("n", 257) }, "name"},
		{"user", func(r *Request) { r.User = "alice smith" }, "user"},
		{"user colon", func(r *Request) { r.User = "a:b" }, "user"},
		{"tag", func(r *Request) { r.Tags = []string{"ok", "not ok"} }, "tags[1]"},
		{"too many tags", func(r *Request) { r.Tags = make([]string, 65) }, "tags"},
		{"no command", func(r *Request) { r.Command = nil }, "command"},
		{"empty command", func(r *Request) { r.Command = []string{} }, "command"},
		{"command tag", func(r *Request) { r.Command = []string{"type:spark", "*"} }, "command[1]"},
		{"too many criteria", func(r *Request) { r.Clusters = make([][]string, 33); fill(r.Clusters) }, "clusters"},
		{"empty criterion", func(r *Request) { r.Clusters = [][]string{{"a"}, {}} }, "clusters[1]"},
		{"criterion tag", func(r *Request) { r.Clusters = [][]string{{"a"}, {"b", "c>"}} }, "clusters[1][1]"},
		{"too many args", func(r *Request) { r.Args = make([]string, MaxArgs+1) }, "args"},
		{"nul in arg", func(r *Request) { r.Args = []string{"a", "b\x00"} }, "args[1]"},
		{"env reserved", func(r *Request) { r.Env = map[string]string{"JINN_ID": "x"} }, "env.JINN_ID"},
		{"env name", func(r *Request) { r.Env = map[string]string{"A.B": "x"} }, "env.A.B"},
		{"env nul", func(r *Request) { r.Env = map[string]string{"A": "\x00"} }, "env.A"},
		{"negative memory", func(r *Request) { r.Memory = -1 }, "memory"},
		{"huge memory", func(r *Request) { r.Memory = MaxMemoryMiB + 1 }, "memory"},
		{"negative timeout", func(r *Request) { r.Timeout = -1 }, "timeout"},
		{"huge timeout", func(r *Request) { r.Timeout = MaxTimeoutSec + 1 }, "timeout"},
		{"negative retries", func(r *Request) { r.Retries = intp(-1) }, "retries"},
		{"too many retries", func(r *Request) { r.Retries = intp(MaxRetries + 1) }, "retries"},
		{"metadata", func(r *Request) { r.Metadata = json.RawMessage(`{"a":`) }, "metadata"},
		{"metadata two values", func(r *Request) { r.Metadata = json.RawMessage(`1 2`) }, "metadata"},
		{"dependency not a URI", func(r *Request) { r.Dependencies = []string{"s3://bkt/x", "/tmp/x"} }, "dependencies[1]"},
		{"dependency http", func(r *Request) { r.Dependencies = []string{"https://example.com/x"} }, "dependencies[0]"},
		{"dependency directory", func(r *Request) { r.Dependencies = []string{"s3://bkt/lib/"} }, "dependencies[0]"},
		{"dependency bad bucket", func(r *Request) { r.Dependencies = []string{"s3://B_ad/x"} }, "dependencies[0]"},
		{"dependency file host", func(r *Request) { r.Dependencies = []string{"file://host/x"} }, "dependencies[0]"},
		{"dependency reserved name", func(r *Request) { r.Dependencies = []string{"s3://bkt/stdout"} }, "dependencies[0]"},
		{"dependencies same name", func(r *Request) { r.Dependencies = []string{"s3://bkt/x.jar", "s3://ckt/x.jar"} }, "dependencies[1]"},
		{"too many dependencies", func(r *Request) {
			for i := range MaxDependencies + 1 {
				r.Dependencies = append(r.Dependencies, fmt.Sprintf("s3://bkt/%d", i))
			}
		}, "dependencies"},
		{"setup not a URI", func(r *Request) { r.Setup = "export A=1" }, "setup"},
		{"notify not http", func(r *Request) { r.Notify = "ftp://example.com/x" }, "notify"},
		{"notify relative", func(r *Request) { r.Notify = "/hooks/jinn" }, "notify"},
		{"notify no host", func(r *Request) { r.Notify = "https:///x" }, "notify"},
		{"notify space", func(r *Request) { r.Notify = "https://example.com/a b" }, "notify"},
		{"notify newline", func(r *Request) { r.Notify = "https://example.com/\nX-Evil: 1" }, "notify"},
		{"notify bad URL", func(r *Request) { r.Notify = "http://[::1" }, "notify"},
		{"notify too long", func(r *Request) { r.Notify = "https://h.example/" + strings.Repeat("p", MaxNotifyLen) }, "notify"},
		{"attachment reserved", func(r *Request) { r.Attachments = []Attachment{{Name: "run", URI: "s3://bkt/run"}} }, "attachments[0].name"},
		{"attachment slash", func(r *Request) { r.Attachments = []Attachment{{Name: "a/b", URI: "s3://bkt/x"}} }, "attachments[0].name"},
		{"attachment no URI", func(r *Request) { r.Attachments = []Attachment{{Name: "a"}} }, "attachments[0].uri"},
		{"attachment takes a dependency's name", func(r *Request) {
			r.Dependencies = []string{"s3://bkt/a.csv"}
			r.Attachments = []Attachment{{Name: "a.csv", URI: "s3://bkt/x/a.csv"}}
		}, "attachments[0].name"},
		// The first problem in field order is the one reported.
		{"first of several", func(r *Request) { r.User = "a b"; r.Memory = -1; r.ID = "a.b" }, "id"},
	}
	for _, tt := range tests {
		r := validRequest()
		tt.mut(&r)
		err := r.Validate()
		if err == nil {
			t.Errorf("%s: Validate() = nil, want an error on %s", tt.name, tt.field)
			continue
		}
		if f := fieldOf(t, err); f != tt.field {
			t.Errorf("%s: field = %q, want %q (%v)", tt.name, f, tt.field, err)
		}
	}
}

func TestRequestValidateFromJSON(t *testing.T) {
	// What an intake receives: the field names on the wire are the documented ones.
	var r Request
	body := `{"id":"x1","user":"bob","command":["type:exec"],"clusters":[["sched:adhoc"]],
		"args":["-c","true"],"env":{"A":"1"},"memory":512,"timeout":60,"retries":0,"metadata":{"k":"v"}}`
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if r.ID != "x1" || r.Memory != 512 || r.Timeout != 60 || r.RetryLimit() != 0 || len(r.Clusters) != 1 || r.Env["A"] != "1" {
		t.Errorf("decoded %+v", r)
	}
	r.Clusters = [][]string{{"a"}, {"a*"}}
	if err := r.Validate(); err == nil || fieldOf(t, err) != "clusters[1][0]" {
		t.Errorf("Validate() = %v, want clusters[1][0]", err)
	}
}

func TestRetryLimit(t *testing.T) {
	tests := []struct {
		retries *int
		want    int
	}{
		{nil, DefaultRetries},
		{intp(0), 0}, // zero is "no retries", not "default"
		{intp(1), 1},
		{intp(MaxRetries), MaxRetries},
	}
	for _, tt := range tests {
		r := Request{Retries: tt.retries}
		if got := r.RetryLimit(); got != tt.want {
			t.Errorf("RetryLimit(%v) = %d, want %d", tt.retries, got, tt.want)
		}
	}
	if DefaultRetries == 0 {
		t.Error("DefaultRetries is 0: the nil case above proves nothing")
	}
}

func TestFingerprintSame(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Request)
	}{
		{"different id", func(r *Request) { r.ID = "job-2" }},
		{"no id", func(r *Request) { r.ID = "" }},
		{"metadata whitespace", func(r *Request) { r.Metadata = json.RawMessage("{\n  \"owner\" : \"data\",\t\"n\": [1,2]\n}") }},
		{"metadata key order", func(r *Request) { r.Metadata = json.RawMessage(`{"n":[1,2],"owner":"data"}`) }},
		{"metadata escapes", func(r *Request) { r.Metadata = json.RawMessage(`{"owner":"d\u0061ta","n":[1,2]}`) }},
		{"env built in another order", func(r *Request) { r.Env = map[string]string{"EMPTY": "", "SPARK_OPTS": "-Xmx2g"} }},
		{"tag order", func(r *Request) { r.Tags = []string{"sched:nightly", "team:data"} }},
		{"repeated tag", func(r *Request) { r.Tags = []string{"team:data", "sched:nightly", "team:data"} }},
		{"command tag order", func(r *Request) { r.Command = []string{"ver:3.5", "type:spark"} }},
		{"criterion tag order", func(r *Request) { r.Clusters = [][]string{{"sched:bonus"}, {"type:yarn", "sched:prod"}} }},
	}
	base := validRequest()
	want := base.Fingerprint()
	if len(want) != 32 {
		t.Errorf("Fingerprint() = %q, want 32 hex digits", want)
	}
	for _, tt := range tests {
		r := validRequest()
		tt.mut(&r)
		if got := r.Fingerprint(); got != want {
			t.Errorf("%s: Fingerprint() = %s, want %s", tt.name, got, want)
		}
	}
	// Fingerprint does not change the request it reads.
	r := validRequest()
	r.Tags = []string{"b", "a", "b"}
	r.Fingerprint()
	if strings.Join(r.Tags, ",") != "b,a,b" || r.ID != "job-1" {
		t.Errorf("Fingerprint changed the request: %+v", r)
	}

	// Retries omitted equals the default spelled out.
	a, b := Request{Command: []string{"x"}}, Request{Command: []string{"x"}, Retries: intp(DefaultRetries)}
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("omitted retries and the default differ")
	}
	// No metadata and null metadata are the same.
	c := Request{Command: []string{"x"}, Metadata: json.RawMessage("null")}
	if a.Fingerprint() != c.Fingerprint() {
		t.Error("no metadata and null metadata differ")
	}
}

func TestFingerprintDifferent(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Request)
	}{
		{"name", func(r *Request) { r.Name = "other" }},
		{"user", func(r *Request) { r.User = "bob" }},
		{"tags", func(r *Request) { r.Tags = []string{"team:data"} }},
		{"command", func(r *Request) { r.Command = []string{"type:spark"} }},
		{"criteria order", func(r *Request) { r.Clusters = [][]string{r.Clusters[1], r.Clusters[0]} }},
		{"criteria dropped", func(r *Request) { r.Clusters = r.Clusters[:1] }},
		{"criteria merged", func(r *Request) { r.Clusters = [][]string{{"sched:bonus", "sched:prod", "type:yarn"}} }},
		{"args", func(r *Request) { r.Args[1] = "2024-01-02" }},
		{"args order", func(r *Request) { r.Args[0], r.Args[1] = r.Args[1], r.Args[0] }},
		{"args empty dropped", func(r *Request) { r.Args = r.Args[:2] }},
		{"env value", func(r *Request) { r.Env["SPARK_OPTS"] = "-Xmx4g" }},
		{"env key", func(r *Request) { r.Env["OTHER"] = "" }},
		{"memory", func(r *Request) { r.Memory = 4096 }},
		{"timeout", func(r *Request) { r.Timeout = 0 }},
		{"retries", func(r *Request) { r.Retries = intp(0) }},
		{"metadata value", func(r *Request) { r.Metadata = json.RawMessage(`{"owner":"ops","n":[1,2]}`) }},
		{"metadata array order", func(r *Request) { r.Metadata = json.RawMessage(`{"owner":"data","n":[2,1]}`) }},
		{"metadata dropped", func(r *Request) { r.Metadata = nil }},
	}
	base := validRequest()
	want := base.Fingerprint()
	seen := map[string]string{}
	for _, tt := range tests {
		r := validRequest()
		tt.mut(&r)
		got := r.Fingerprint()
		if got == want {
			t.Errorf("%s: Fingerprint() unchanged", tt.name)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%s and %s have the same fingerprint", tt.name, other)
		}
		seen[got] = tt.name
	}
}

func TestFingerprintMetadataNumbersKeepPrecision(t *testing.T) {
	// Both decode to the same float64; they are different requests.
	a := Request{Command: []string{"x"}, Metadata: json.RawMessage(`{"id":12345678901234567890}`)}
	b := Request{Command: []string{"x"}, Metadata: json.RawMessage(`{"id":12345678901234567891}`)}
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("large integers in metadata that differ give the same fingerprint")
	}
}

func TestFingerprintInvalidMetadata(t *testing.T) {
	// Validate refuses these, but a fingerprint must still tell them apart
	// rather than hash an empty marshal result.
	a := Request{Command: []string{"x"}, Metadata: json.RawMessage(`{"a":`)}
	b := Request{Command: []string{"x"}, Metadata: json.RawMessage(`{"b":`)}
	c := Request{Command: []string{"y"}, Metadata: json.RawMessage(`{"a":`)}
	if a.Fingerprint() == b.Fingerprint() || a.Fingerprint() == c.Fingerprint() {
		t.Error("requests with invalid metadata share a fingerprint")
	}
	if a.Fingerprint() != a.Fingerprint() {
		t.Error("fingerprint not stable")
	}
}

func TestFingerprintMetadataNotUTF8(t *testing.T) {
	// Valid JSON syntax with bytes that are not UTF-8: decoding would turn both
	// into U+FFFD and merge them.
	a := Request{Command: []string{"x"}, Metadata: json.RawMessage("{\"a\":\"\xff\"}")}
	b := Request{Command: []string{"x"}, Metadata: json.RawMessage("{\"a\":\"\xfe\"}")}
	c := Request{Command: []string{"x"}, Metadata: json.RawMessage("{ \"a\" : \"\xff\" }")}
	d := Request{Command: []string{"x"}, Metadata: json.RawMessage("{\"a\":\"\uFFFD\"}")}
	if a.Fingerprint() == b.Fingerprint() || a.Fingerprint() == d.Fingerprint() {
		t.Error("metadata that differs only in bytes that are not UTF-8 shares a fingerprint")
	}
	if a.Fingerprint() != c.Fingerprint() {
		t.Error("whitespace changes the fingerprint of metadata that is not UTF-8")
	}
}
