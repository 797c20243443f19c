package job

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// FieldError is a problem with one field of user input. The intake turns it
// into a 400 whose JSON body names the field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var (
	// nameRE is a name that becomes a NATS subject token (cluster, command,
	// application, pool, worker): it can never carry '.', '*', '>' or spaces.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// idRE is a job id: a subject token too (jinn.events.<id>), so no dots.
	idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	// userRE is a user name; it ends up in Redis index keys.
	userRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	// tagRE is a tag such as "type:spark" or "sched:adhoc".
	tagRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/=@+-]{0,127}$`)
	// envRE is an environment variable name.
	envRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// ValidateName checks a name that becomes a NATS subject token.
func ValidateName(field, name string) error {
	if name == "" {
		return fieldErr(field, "required")
	}
	if !nameRE.MatchString(name) {
		return fieldErr(field, "%q is not a valid name: use 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// ValidateID checks a job id.
func ValidateID(field, id string) error {
	if !idRE.MatchString(id) {
		return fieldErr(field, "%q is not a valid job id: use 1-128 characters of A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit", id)
	}
	return nil
}

// ValidateUser checks a user name.
func ValidateUser(field, user string) error {
	if !userRE.MatchString(user) {
		return fieldErr(field, "%q is not a valid user: use 1-64 characters of letters, digits, '.', '_', '@' and '-'", user)
	}
	return nil
}

// ValidateTags checks a list of tags; empty is allowed.
func ValidateTags(field string, tags []string) error {
	if len(tags) > 64 {
		return fieldErr(field, "at most 64 tags, got %d", len(tags))
	}
	for i, t := range tags {
		if !tagRE.MatchString(t) {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a valid tag: use 1-128 characters of letters, digits and ._:/=@+-", t)
		}
	}
	return nil
}

// ValidateEnv checks environment variables given by a user. JINN_* is reserved.
func ValidateEnv(field string, env map[string]string) error {
	if len(env) > 1024 {
		return fieldErr(field, "at most 1024 variables, got %d", len(env))
	}
	// In key order, so that the same bad map always gives the same error.
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := env[k]
		if !envRE.MatchString(k) {
			return fieldErr(field+"."+k, "not a valid environment variable name")
		}
		if strings.HasPrefix(k, "JINN_") {
			return fieldErr(field+"."+k, "the JINN_ prefix is reserved for variables jinn sets")
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fieldErr(field+"."+k, "value contains a NUL byte")
		}
	}
	return nil
}
