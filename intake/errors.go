package intake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/jinn-fleet/jinn/job"
)

// apiError is the body of every error: {"error":{"code","message","field"}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(field, format string, args ...any) *apiError {
	e := errorf(http.StatusBadRequest, "bad_request", format, args...)
	e.Field = field
	return e
}

func notFound(format string, args ...any) *apiError {
	return errorf(http.StatusNotFound, "not_found", format, args...)
}

func conflict(format string, args ...any) *apiError {
	return errorf(http.StatusConflict, "conflict", format, args...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	var fe *job.FieldError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &fe):
		ae = badRequest(fe.Field, "%s", fe.Error())
	default:
		ae = errorf(http.StatusInternalServerError, "internal", "%s", err.Error())
	}
	writeJSON(w, ae.Status, map[string]*apiError{"error": ae})
}

// maxBody is the largest JSON body the API reads.
const maxBody = 1 << 20

// decode reads one JSON value into v, refusing unknown fields, trailing
// data and bodies over maxBody, with errors that name the problem.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return badRequest("", "the body has data after its JSON value")
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return decodeErr(err)
		}
		return nil
	}
	return decodeErr(err)
}

func decodeErr(err error) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than the limit of %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return badRequest("", "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "the body is truncated JSON")
	case errors.As(err, &se):
		return badRequest("", "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		return badRequest(te.Field, "%s must be %s, not a JSON %s", fieldName(te.Field), te.Type.String(), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(f, "unknown field %q", f)
	default:
		return badRequest("", "bad JSON: %s", err.Error())
	}
}

func fieldName(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}
