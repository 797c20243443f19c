package job

import (
	"encoding/json"
	"strings"
	"testing"
)

// The checks below restate the rules by hand, independently of the package's
// regular expressions, so that a loosened expression fails the fuzzers.

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }

// wantName reports whether s is a valid subject-token name.
func wantName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isLowerAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// wantID reports whether s is a valid job id.
func wantID(s string) bool {
	if len(s) == 0 || len(s) > 128 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// wantTag reports whether s is a valid tag.
func wantTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("._:/=@+-", rune(c)) {
			return false
		}
	}
	return true
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"", "a", "spark", "prod-2", "bonus_cluster", "a.b", "a*", ">", "a b", "A", "-a",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "a\n", "a\t", "é", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName("name", s)
		if err == nil {
			if strings.ContainsAny(s, ".*> \t\n") {
				t.Fatalf("ValidateName accepted %q, which has subject syntax or whitespace", s)
			}
			if len(s) > 63 || s == "" {
				t.Fatalf("ValidateName accepted %q of length %d", s, len(s))
			}
			for i := 0; i < len(s); i++ {
				if c := s[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
					t.Fatalf("ValidateName accepted %q, which is not lowercase ASCII", s)
				}
			}
		}
		if got, want := err == nil, wantName(s); got != want {
			t.Fatalf("ValidateName(%q) ok = %v, want %v (err %v)", s, got, want, err)
		}
		if err != nil && fieldOf(t, err) != "name" {
			t.Fatalf("ValidateName(%q): wrong field", s)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"command":["type:exec"]}`,
		`{"id":"job-1","user":"alice","tags":["a"],"command":["type:spark"],"clusters":[["sched:bonus"],["sched:prod"]],` +
			`"args":["-c","x"],"env":{"A":"1"},"memory":512,"timeout":60,"retries":1,"metadata":{"b":1,"a":[true,null]}}`,
		`{"id":"a.b","command":["x"]}`,
		`{"id":"*","command":["x>"]}`,
		`{"command":["x"],"clusters":[[]]}`,
		`{"command":["x"],"env":{"JINN_ID":"y"}}`,
		`{"command":["x"],"metadata":{"n":12345678901234567890, "s":"\u00e9"}}`,
		`{"command":["x"],"retries":-1}`,
		`{"command":["x"],"metadata":null}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var r Request
		if json.Unmarshal([]byte(s), &r) != nil {
			return
		}
		err := r.Validate()
		if err != nil {
			if fieldOf(t, err) == "" {
				t.Fatalf("Validate error %v names no field", err)
			}
			r.Fingerprint() // must not panic on a bad request either
			return
		}
		if r.ID != "" && (!wantID(r.ID) || strings.ContainsAny(r.ID, ".*>")) {
			t.Fatalf("Validate accepted id %q", r.ID)
		}
		if r.User != "" && strings.ContainsAny(r.User, "*> :\x00") {
			t.Fatalf("Validate accepted user %q", r.User)
		}
		if len(r.Command) == 0 {
			t.Fatal("Validate accepted a request without a command")
		}
		all := append(append([]string{}, r.Tags...), r.Command...)
		for _, c := range r.Clusters {
			if len(c) == 0 {
				t.Fatal("Validate accepted an empty cluster criterion")
			}
			all = append(all, c...)
		}
		for _, tag := range all {
			if !wantTag(tag) {
				t.Fatalf("Validate accepted tag %q", tag)
			}
		}
		for k, v := range r.Env {
			if strings.HasPrefix(k, "JINN_") || strings.ContainsRune(k+v, 0) || k == "" {
				t.Fatalf("Validate accepted env %q=%q", k, v)
			}
		}
		if n := r.RetryLimit(); n < 0 || n > MaxRetries {
			t.Fatalf("Validate accepted retries %d", n)
		}
		if r.Memory < 0 || r.Memory > MaxMemoryMiB || r.Timeout < 0 || r.Timeout > MaxTimeoutSec {
			t.Fatalf("Validate accepted memory %d, timeout %d", r.Memory, r.Timeout)
		}

		fp := r.Fingerprint()
		if fp2 := r.Fingerprint(); fp != fp2 {
			t.Fatalf("Fingerprint not stable: %s, %s", fp, fp2)
		}
		// A request stored as JSON and read back is the same request.
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("marshal a valid request: %v", err)
		}
		var back Request
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("a valid request read back from %s is invalid: %v", b, err)
		}
		if fp3 := back.Fingerprint(); fp3 != fp {
			t.Fatalf("Fingerprint changed across a JSON round trip: %s, %s (%s)", fp, fp3, b)
		}
		// The id is no part of the fingerprint.
		back.ID = "other-id"
		if back.Fingerprint() != fp {
			t.Fatal("Fingerprint depends on the id")
		}
	})
}
