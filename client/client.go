package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// apiPath is the base path of jinn's HTTP API.
const apiPath = "/api/v1"

// Client talks to jinn's HTTP API. It is safe for concurrent use.
type Client struct {
	base  string // scheme://host[:port][/prefix]/api/v1, no trailing slash
	http  *http.Client
	token string
	user  string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc. The default
// is a client without a timeout, because log streams last as long as their
// job: bound each call with its context instead.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithToken sends token as a bearer token with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithUser is the user that Submit fills into a request that names none.
func WithUser(user string) Option { return func(c *Client) { c.user = user } }

// New returns a client of the jinn API at baseURL, e.g. "http://127.0.0.1:8080".
// The API's base path /api/v1 is added unless baseURL already ends with it.
func New(baseURL string, opts ...Option) *Client {
	base := strings.TrimRight(baseURL, "/")
	if !strings.HasSuffix(base, apiPath) {
		base += apiPath
	}
	c := &Client{base: base, http: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// APIError is an error answered by the API: its HTTP status and the error
// body {"error":{"code","message","field"}}.
type APIError struct {
	Status  int    // HTTP status code
	Code    string // not_found, bad_request, conflict, too_large, unprocessable, ...
	Message string
	Field   string // the request field at fault, if any
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = strings.ToLower(http.StatusText(e.Status))
	}
	s := fmt.Sprintf("%d %s", e.Status, code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// IsNotFound reports whether err is an *APIError with status 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// send makes one request and returns the response when its status is 2xx;
// any other status becomes an *APIError. The caller closes the body.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "jinn-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err // *url.Error already names the method and URL
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer closeBody(resp)
		return nil, decodeError(resp)
	}
	return resp, nil
}

// call makes a JSON request and decodes a JSON answer into out (when out is
// not nil and the answer has a body). It returns the status code.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	resp, err := c.send(ctx, method, path, query, in)
	if err != nil {
		return 0, err
	}
	defer closeBody(resp)
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return resp.StatusCode, nil // an empty body: nothing to decode
		}
		return 0, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// closeBody drains a little of what is left so that the connection can be
// reused, and closes the body.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(b, &body) == nil && (body.Error.Code != "" || body.Error.Message != "") {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
		return e
	}
	// Not jinn's error body (a proxy, a load balancer): keep what it said.
	e.Message = strings.TrimSpace(string(b))
	if len(e.Message) > 512 {
		e.Message = e.Message[:512] + "..."
	}
	return e
}

// seg escapes one path segment; an empty one is refused so that, say, an
// empty job id cannot turn GET /jobs/{id} into a listing.
func seg(what, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%s is required", what)
	}
	return url.PathEscape(s), nil
}
