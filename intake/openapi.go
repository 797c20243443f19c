package intake

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jinn-fleet/jinn/job"
)

// The OpenAPI 3.0 description of /api/v1, served at GET /api/v1/openapi.json.
// Its schemas are built from the Go types the handlers encode, and its
// paths from the table below; openapi_test.go checks the table against the
// routes registered in routes(), both ways, and the auth table beside them.

// apiOp is one documented operation.
type apiOp struct {
	method, path string // path as in the mux pattern, without /api/v1
	summary      string
	query        []apiParam
	body         string // schema name of the JSON body; "" for none
	ok           int    // the status of success
	resp         string // schema name of the success body; "" for none
	contentType  string // of the success body; default application/json
}

type apiParam struct{ name, about string }

// apiSchemas are the named schemas, from the Go types.
var apiSchemas = map[string]any{
	"Job":         job.Job{},
	"Request":     job.Request{},
	"Cluster":     job.Cluster{},
	"Command":     job.Command{},
	"Application": job.Application{},
	"Worker":      job.Worker{},
	"Pool":        job.Pool{},
	"Event":       job.Event{},
	"File":        job.File{},
}

var listQuery = []apiParam{{"user", "only this user's jobs (a user's token lists its own)"}, {"status", "only jobs in this status"},
	{"cluster", "only jobs on this cluster"}, {"tag", "only jobs with this tag"}, {"limit", "1 to 1000"}, {"cursor", "the next of the previous page"}}

// apiOps lists every route of routes() except the catch-all /api/v1/.
var apiOps = []apiOp{
	{method: "POST", path: "/jobs", summary: "Submit a job (JSON, or multipart/form-data with a part \"request\" and files). 200 when the same id and request were submitted before; 422 with the job when nothing matches.", body: "Request", ok: 202, resp: "Job"},
	{method: "GET", path: "/jobs", summary: "List jobs, newest first", query: listQuery, ok: 200, resp: "JobList"},
	{method: "GET", path: "/jobs/{id}", summary: "Read a job", ok: 200, resp: "Job"},
	{method: "DELETE", path: "/jobs/{id}", summary: "Kill a job", ok: 202, resp: "Job"},
	{method: "GET", path: "/jobs/{id}/output", summary: "List the job's directory", ok: 200, resp: "Listing"},
	{method: "GET", path: "/jobs/{id}/output/{path...}", summary: "Read a file of the job's directory (Range works), or list a directory", ok: 200, contentType: "application/octet-stream"},
	{method: "GET", path: "/jobs/{id}/logs", summary: "Read the job's stdout (or ?stream=stderr); ?follow=true streams it until the job ends", query: []apiParam{{"stream", "stdout or stderr"}, {"follow", "true to follow"}, {"offset", "first byte"}}, ok: 200, contentType: "text/plain"},
	{method: "GET", path: "/jobs/{id}/history", summary: "The job's status changes, oldest first", ok: 200, resp: "History"},
	{method: "GET", path: "/events", summary: "Server-sent events of status changes (event: status, data: an Event); ?job= for one job", query: []apiParam{{"job", "one job's events"}, {"access_token", "the bearer token, for a browser's EventSource, which cannot send headers"}}, ok: 200, contentType: "text/event-stream"},

	{method: "GET", path: "/clusters", summary: "List clusters", ok: 200, resp: "ClusterList"},
	{method: "GET", path: "/clusters/{name}", summary: "Read a cluster", ok: 200, resp: "Cluster"},
	{method: "PUT", path: "/clusters/{name}", summary: "Create (201) or replace (200) a cluster", body: "Cluster", ok: 200, resp: "Cluster"},
	{method: "PATCH", path: "/clusters/{name}", summary: "Change some fields, e.g. {\"status\":\"OUT_OF_SERVICE\"}", body: "Cluster", ok: 200, resp: "Cluster"},
	{method: "DELETE", path: "/clusters/{name}", summary: "Delete a cluster", ok: 204},
	{method: "GET", path: "/commands", summary: "List commands", ok: 200, resp: "CommandList"},
	{method: "GET", path: "/commands/{name}", summary: "Read a command", ok: 200, resp: "Command"},
	{method: "PUT", path: "/commands/{name}", summary: "Create (201) or replace (200) a command", body: "Command", ok: 200, resp: "Command"},
	{method: "PATCH", path: "/commands/{name}", summary: "Change some fields of a command", body: "Command", ok: 200, resp: "Command"},
	{method: "DELETE", path: "/commands/{name}", summary: "Delete a command", ok: 204},
	{method: "GET", path: "/applications", summary: "List applications", ok: 200, resp: "ApplicationList"},
	{method: "GET", path: "/applications/{name}", summary: "Read an application", ok: 200, resp: "Application"},
	{method: "PUT", path: "/applications/{name}", summary: "Create (201) or replace (200) an application", body: "Application", ok: 200, resp: "Application"},
	{method: "PATCH", path: "/applications/{name}", summary: "Change some fields of an application", body: "Application", ok: 200, resp: "Application"},
	{method: "DELETE", path: "/applications/{name}", summary: "Delete an application no command links", ok: 204},

	{method: "GET", path: "/workers", summary: "List live workers", ok: 200, resp: "WorkerList"},
	{method: "POST", path: "/workers/{id}/drain", summary: "Drain a worker: it stops pulling, finishes its jobs, exits", ok: 202, resp: "Worker"},
	{method: "GET", path: "/pools", summary: "List the pools the autoscaler sizes", ok: 200, resp: "PoolList"},
	{method: "GET", path: "/pools/{name}", summary: "One pool with its recent decisions", query: []apiParam{{"decisions", "how many decisions"}}, ok: 200, resp: "Pool"},
	{method: "GET", path: "/openapi.json", summary: "This document", ok: 200, resp: ""},
}

var (
	openAPIOnce sync.Once
	openAPIDoc  []byte
)

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	openAPIOnce.Do(func() {
		openAPIDoc, _ = json.MarshalIndent(OpenAPI(), "", "  ")
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
	return nil
}

var pathParam = regexp.MustCompile(`\{([a-z]+)(\.\.\.)?\}`)

// OpenAPI returns the OpenAPI 3.0 document of /api/v1.
func OpenAPI() map[string]any {
	schemas := map[string]any{}
	for name, v := range apiSchemas {
		schemas[name] = schemaOf(reflect.TypeOf(v))
	}
	list := func(key, of string) map[string]any {
		return obj(map[string]any{key: map[string]any{"type": "array", "items": ref(of)}})
	}
	schemas["JobList"] = obj(map[string]any{"jobs": map[string]any{"type": "array", "items": ref("Job")},
		"next": map[string]any{"type": "string", "description": "cursor of the next page; empty on the last"}})
	schemas["ClusterList"] = list("clusters", "Cluster")
	schemas["CommandList"] = list("commands", "Command")
	schemas["ApplicationList"] = list("applications", "Application")
	schemas["WorkerList"] = list("workers", "Worker")
	schemas["PoolList"] = list("pools", "Pool")
	schemas["History"] = obj(map[string]any{"id": str(), "status": str(), "history": map[string]any{"type": "array", "items": ref("Event")}})
	schemas["Listing"] = obj(map[string]any{"path": str(), "entries": map[string]any{"type": "array", "items": ref("File")}})
	schemas["Error"] = obj(map[string]any{"error": obj(map[string]any{
		"code":    map[string]any{"type": "string", "description": "bad_request, unauthorized, forbidden, not_found, conflict, too_large, unprocessable, too_many_active_jobs, unavailable, internal"},
		"message": map[string]any{"type": "string", "description": "what went wrong and what to do next"},
		"field":   map[string]any{"type": "string", "description": "the request field at fault"},
	})})
	errResp := func(what string) map[string]any {
		return map[string]any{"description": what, "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	}
	paths := map[string]any{}
	for _, op := range apiOps {
		p := pathParam.ReplaceAllString(op.path, "{$1}")
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(op.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": str()})
		}
		for _, q := range op.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.about, "schema": str()})
		}
		ok := map[string]any{"description": "success"}
		ct := op.contentType
		if ct == "" {
			ct = "application/json"
		}
		switch {
		case op.resp != "":
			ok["content"] = map[string]any{ct: map[string]any{"schema": ref(op.resp)}}
		case op.ok != 204:
			ok["content"] = map[string]any{ct: map[string]any{"schema": map[string]any{"type": "string"}}}
		}
		responses := map[string]any{strconv.Itoa(op.ok): ok, "default": errResp("an error")}
		access := accessOf(op.method + " /api/v1" + op.path)
		security := []any{map[string]any{"bearer": []any{}}}
		if access.role == RoleNone {
			security = []any{}
		} else {
			responses["401"] = errResp("no token, or an unknown one")
			responses["403"] = errResp("the token's role is too low, or the job is another user's")
		}
		o := map[string]any{"summary": op.summary, "responses": responses, "security": security,
			"operationId": strings.ToLower(op.method) + opName(op.path), "x-jinn-role": access.role.String()}
		if params != nil {
			o["parameters"] = params
		}
		if op.body != "" {
			content := map[string]any{"application/json": map[string]any{"schema": ref(op.body)}}
			if op.method == "POST" && op.path == "/jobs" {
				content["multipart/form-data"] = map[string]any{"schema": obj(map[string]any{
					"request": map[string]any{"type": "string", "description": "the Request as JSON"},
					"file":    map[string]any{"type": "array", "items": map[string]any{"type": "string", "format": "binary"}, "description": "file parts (any part name): each is placed in the job's directory under its file name"},
				})}
			}
			o["requestBody"] = map[string]any{"required": true, "content": content}
		}
		item[strings.ToLower(op.method)] = o
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "jinn API", "version": "1",
			"description": "jinn runs jobs on a fleet of workers. With auth on (jinn intake --tokens), send `Authorization: Bearer TOKEN`; see docs/auth.md."},
		"servers": []any{map[string]any{"url": "/api/v1"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

func opName(path string) string {
	var b strings.Builder
	for _, part := range strings.Split(path, "/") {
		part = strings.Trim(strings.TrimSuffix(part, "...}"), "{}")
		part = strings.TrimSuffix(part, ".json")
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
func str() map[string]any            { return map[string]any{"type": "string"} }
func obj(props map[string]any) map[string]any {
	return map[string]any{"type": "object", "properties": props}
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

// schemaOf describes a Go type as encoding/json writes it.
func schemaOf(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{"description": "any JSON value"}
	}
	switch t.Kind() {
	case reflect.String:
		return str()
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				if sub, ok := schemaOf(f.Type)["properties"].(map[string]any); ok {
					for k, v := range sub {
						props[k] = v
					}
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type)
		}
		return obj(props)
	}
	return map[string]any{}
}
