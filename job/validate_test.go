package job

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fieldOf returns the Field of err, which must be a *FieldError.
func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FieldError", err, err)
	}
	if fe.Message == "" {
		t.Errorf("FieldError for %s has no message", fe.Field)
	}
	if got, want := fe.Error(), fe.Field+": "+fe.Message; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	return fe.Field
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"spark", true},
		{"prod-2", true},
		{"bonus_cluster", true},
		{"9lives", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"a.b", false}, // subject separator
		{"a*", false},  // wildcard
		{"*", false},
		{">", false}, // full wildcard
		{"a>", false},
		{"a b", false},
		{" a", false},
		{"a\t", false},
		{"a\n", false},
		{"a\x00", false},
		{"Spark", false}, // uppercase
		{"sparK", false},
		{"-a", false},
		{"_a", false},
		{"a/b", false},
		{"a:b", false},
		{"é", false},
		{"a\u00a0", false},
	}
	for _, tt := range tests {
		err := ValidateName("cluster", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			continue
		}
		if err != nil {
			if f := fieldOf(t, err); f != "cluster" {
				t.Errorf("ValidateName(%q) field = %q, want cluster", tt.name, f)
			}
		}
	}
	err := ValidateName("pool", "")
	if err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("ValidateName(\"\") = %v, want a 'required' error", err)
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"A", true},
		{"0", true},
		{"Job-42_x", true},
		{"01HZY3KXQ8V9ZP2N7M0QW6T4AB", true},
		{strings.Repeat("Z", 128), true},
		{"", false},
		{strings.Repeat("Z", 129), false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"-a", false},
		{"_a", false},
		{"a/b", false},
		{"a:b", false},
		{"a\n", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		err := ValidateID("id", tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
		if err != nil && fieldOf(t, err) != "id" {
			t.Errorf("ValidateID(%q): wrong field", tt.id)
		}
	}
}

func TestValidateUser(t *testing.T) {
	tests := []struct {
		user string
		ok   bool
	}{
		{"alice", true},
		{"Alice", true},
		{"alice.smith@example.com", true},
		{"svc-etl_1", true},
		{"7", true},
		{strings.Repeat("u", 64), true},
		{"", false},
		{strings.Repeat("u", 65), false},
		{".alice", false},
		{"@alice", false},
		{"alice smith", false},
		{"alice:x", false}, // a Redis key separator
		{"alice*", false},
		{"a{b}", false}, // Redis cluster hash tag
		{"alice\n", false},
	}
	for _, tt := range tests {
		err := ValidateUser("user", tt.user)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateUser(%q) = %v, want ok=%v", tt.user, err, tt.ok)
		}
		if err != nil && fieldOf(t, err) != "user" {
			t.Errorf("ValidateUser(%q): wrong field", tt.user)
		}
	}
}

func TestValidateTags(t *testing.T) {
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	tests := []struct {
		name  string
		tags  []string
		field string // "" when valid
	}{
		{"nil", nil, ""},
		{"empty", []string{}, ""},
		{"typical", []string{"type:spark", "sched:adhoc", "ver=3.5", "a/b", "x@y", "c++", "a.b-c_d"}, ""},
		{"uppercase", []string{"Type:Spark"}, ""},
		{"longest", []string{strings.Repeat("t", 128)}, ""},
		{"64 tags", many[:64], ""},
		{"65 tags", many, "tags"},
		{"too long", []string{strings.Repeat("t", 129)}, "tags[0]"},
		{"empty tag", []string{"ok", ""}, "tags[1]"},
		{"space", []string{"a", "b", "type: spark"}, "tags[2]"},
		{"wildcard", []string{"*"}, "tags[0]"},
		{"gt", []string{"a>"}, "tags[0]"},
		{"leading colon", []string{":a"}, "tags[0]"},
		{"leading dot", []string{".a"}, "tags[0]"},
		{"comma", []string{"a,b"}, "tags[0]"},
		{"newline", []string{"a\n"}, "tags[0]"},
		{"nul", []string{"a\x00"}, "tags[0]"},
		{"unicode", []string{"typé"}, "tags[0]"},
	}
	for _, tt := range tests {
		err := ValidateTags("tags", tt.tags)
		if tt.field == "" {
			if err != nil {
				t.Errorf("%s: ValidateTags = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: ValidateTags accepted %q", tt.name, tt.tags)
			continue
		}
		if f := fieldOf(t, err); f != tt.field {
			t.Errorf("%s: field = %q, want %q", tt.name, f, tt.field)
		}
	}
}

func TestValidateEnv(t *testing.T) {
	big := make(map[string]string, 1025)
	for i := range 1025 {
		big[fmt.Sprintf("V%d", i)] = "x"
	}
	tests := []struct {
		name  string
		env   map[string]string
		field string // "" when valid
	}{
		{"nil", nil, ""},
		{"typical", map[string]string{"PATH": "/bin", "_x": "", "spark_home": "/opt/spark", "A1": "a=b c\nd"}, ""},
		{"JINN alone is fine", map[string]string{"JINN": "1", "JINNX": "1"}, ""},
		{"1024 vars", func() map[string]string {
			m := make(map[string]string, 1024)
			for i := range 1024 {
				m[fmt.Sprintf("V%d", i)] = ""
			}
			return m
		}(), ""},
		{"1025 vars", big, "env"},
		{"reserved prefix", map[string]string{"JINN_JOB_ID": "x"}, "env.JINN_JOB_ID"},
		{"reserved bare prefix", map[string]string{"JINN_": "x"}, "env.JINN_"},
		{"digit first", map[string]string{"1A": "x"}, "env.1A"},
		{"empty name", map[string]string{"": "x"}, "env."},
		{"equals in name", map[string]string{"A=B": "x"}, "env.A=B"},
		{"dash", map[string]string{"A-B": "x"}, "env.A-B"},
		{"space", map[string]string{"A B": "x"}, "env.A B"},
		{"nul in name", map[string]string{"A\x00": "x"}, "env.A\x00"},
		{"nul in value", map[string]string{"A": "x\x00y"}, "env.A"},
		{"too long name", map[string]string{strings.Repeat("A", 129): ""}, "env." + strings.Repeat("A", 129)},
		// Several bad keys: the first in key order is reported, every time.
		{"first in order", map[string]string{"Z-Z": "", "B-B": "", "M-M": "", "JINN_X": ""}, "env.B-B"},
	}
	for _, tt := range tests {
		for range 20 { // map order is random: the answer must not be
			err := ValidateEnv("env", tt.env)
			if tt.field == "" {
				if err != nil {
					t.Errorf("%s: ValidateEnv = %v, want nil", tt.name, err)
				}
				break
			}
			if err == nil {
				t.Errorf("%s: ValidateEnv accepted %q", tt.name, tt.env)
				break
			}
			if f := fieldOf(t, err); f != tt.field {
				t.Errorf("%s: field = %q, want %q", tt.name, f, tt.field)
				break
			}
		}
	}
	if err := ValidateEnv("env", map[string]string{"JINN_X": ""}); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("JINN_ error %v does not say the prefix is reserved", err)
	}
}
