package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"

	"github.com/jinn-fleet/jinn/job"
)

// Applications lists every application.
func (c *Client) Applications(ctx context.Context) ([]job.Application, error) {
	var list struct {
		Applications []job.Application `json:"applications"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/applications", nil, nil, &list); err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	}
	return list.Applications, nil
}

// Application returns one application.
func (c *Client) Application(ctx context.Context, name string) (*job.Application, error) {
	var a job.Application
	if err := c.entity(ctx, http.MethodGet, "application", "/applications/", name, nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// PutApplication creates or replaces the application a.Name and returns it
// as stored.
func (c *Client) PutApplication(ctx context.Context, a *job.Application) (*job.Application, error) {
	out := *a
	if err := c.entity(ctx, http.MethodPut, "application", "/applications/", a.Name, a, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteApplication removes an application; one that a command still links
// is a 409 conflict.
func (c *Client) DeleteApplication(ctx context.Context, name string) error {
	return c.entity(ctx, http.MethodDelete, "application", "/applications/", name, nil, nil)
}

// Attachment is a file sent with a job: the job finds it in its directory
// as Name (which jinn sanitizes).
type Attachment struct {
	Name string
	Body io.Reader
}

// SubmitWithFiles submits a job with attached files in one multipart
// request, streamed: the files are not held in memory. Without files it is
// Submit.
func (c *Client) SubmitWithFiles(ctx context.Context, req *job.Request, files []Attachment) (*job.Job, error) {
	if len(files) == 0 {
		return c.Submit(ctx, req)
	}
	r := *req
	if r.User == "" {
		r.User = c.user
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeMultipart(mw, &r, files))
	}()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/jobs", pr)
	if err != nil {
		pr.Close()
		return nil, err
	}
	hr.Header.Set("Content-Type", mw.FormDataContentType())
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "jinn-client")
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(hr)
	pr.Close() // stops the writer if the server answered before reading it all
	if err != nil {
		return nil, fmt.Errorf("submit job with files: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("submit job with files: %w", decodeError(resp))
	}
	var j job.Job
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		return nil, fmt.Errorf("submit job with files: decode answer: %w", err)
	}
	return &j, nil
}

func writeMultipart(mw *multipart.Writer, req *job.Request, files []Attachment) error {
	part, err := mw.CreateFormField("request")
	if err != nil {
		return err
	}
	if err := json.NewEncoder(part).Encode(req); err != nil {
		return err
	}
	for _, f := range files {
		part, err := mw.CreateFormFile("file", f.Name)
		if err != nil {
			return err
		}
		if _, err := io.Copy(part, f.Body); err != nil {
			return fmt.Errorf("attach %s: %w", f.Name, err)
		}
	}
	return mw.Close()
}

// OpenAttachments opens local files as attachments named by their base
// names; close them with the returned function.
func OpenAttachments(paths []string) ([]Attachment, func(), error) {
	var out []Attachment
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("attach: %w", err)
		}
		if st, err := f.Stat(); err == nil && st.IsDir() {
			f.Close()
			closeAll()
			return nil, nil, fmt.Errorf("attach %s: a directory; attach its files, or a tarball of it", p)
		}
		opened = append(opened, f)
		out = append(out, Attachment{Name: filepath.Base(p), Body: f})
	}
	return out, closeAll, nil
}
