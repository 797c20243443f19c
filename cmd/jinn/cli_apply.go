package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"github.com/jinn-fleet/jinn/job"
)

func (c *console) apply(ctx context.Context, args []string) error {
	fs := c.newFlagSet("apply", "-f FILE...",
		`Creates or replaces the clusters, commands and applications described in
YAML files. Each document (documents are separated by ---) has "kind: cluster",
"kind: command" or "kind: application" and the fields of that entity, e.g.

  kind: cluster
  name: local
  tags: [type:local]
  ---
  kind: command
  name: sh
  tags: [type:sh]
  executable: [/bin/sh, -c]
  ---
  kind: application
  name: tool
  files: [s3://bucket/tool.tar.gz]
  setup: s3://bucket/tool-setup.sh

Every document is read and checked before the first is applied, and
applications are applied before the commands that link them.`)
	srv := serverFlags(fs)
	var files listFlag
	fs.Var(&files, "f", "YAML `file` of clusters, commands and applications, - for stdin; repeatable")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "-f FILE and no arguments"); err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return fmt.Errorf("apply: -f FILE is required")
	}
	var docs []document
	for _, f := range files {
		name, data := f, []byte(nil)
		if f == "-" {
			name = "stdin"
			data, err = io.ReadAll(c.stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		ds, err := parseDocuments(data)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		docs = append(docs, ds...)
	}
	if len(docs) == 0 {
		return fmt.Errorf("apply: no clusters, commands or applications in %s", strings.Join(files, ", "))
	}
	cl := srv.client()
	// Applications first: the jobs of a command that links one are refused
	// while it does not exist.
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].application != nil && docs[j].application == nil })
	for _, d := range docs {
		switch {
		case d.cluster != nil:
			if _, err := cl.PutCluster(ctx, d.cluster); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "cluster/%s applied\n", d.cluster.Name)
		case d.command != nil:
			if _, err := cl.PutCommand(ctx, d.command); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "command/%s applied\n", d.command.Name)
		case d.application != nil:
			if _, err := cl.PutApplication(ctx, d.application); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "application/%s applied\n", d.application.Name)
		}
	}
	return nil
}

// document is one entity of an apply file: a cluster, a command or an
// application.
type document struct {
	cluster     *job.Cluster
	command     *job.Command
	application *job.Application
}

// parseDocuments reads every document of a YAML file and checks each one.
// Documents are numbered from 1, empty ones not counted.
func parseDocuments(data []byte) ([]document, error) {
	var docs []document
	for _, src := range splitDocuments(data) {
		n := len(docs) + 1
		f, err := parser.ParseBytes(src, 0)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(f.Docs) == 0 || f.Docs[0].Body == nil {
			continue // empty: only comments, or nothing between two ---
		}
		body := f.Docs[0].Body
		where := fmt.Sprintf("document %d (line %d)", n, body.GetToken().Position.Line)
		var head struct {
			Kind string `yaml:"kind"`
		}
		if err := yaml.NodeToValue(body, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		var d document
		switch strings.ToLower(head.Kind) {
		case "cluster":
			var v struct {
				Kind        string `yaml:"kind"`
				job.Cluster `yaml:",inline"`
			}
			if err := yaml.NodeToValue(body, &v, yaml.DisallowUnknownField()); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if err := v.Cluster.Validate(); err != nil {
				return nil, fmt.Errorf("%s: cluster %s: %w", where, v.Name, err)
			}
			d.cluster = &v.Cluster
		case "command":
			var v struct {
				Kind        string `yaml:"kind"`
				job.Command `yaml:",inline"`
			}
			if err := yaml.NodeToValue(body, &v, yaml.DisallowUnknownField()); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if err := v.Command.Validate(); err != nil {
				return nil, fmt.Errorf("%s: command %s: %w", where, v.Name, err)
			}
			d.command = &v.Command
		case "application":
			var v struct {
				Kind            string `yaml:"kind"`
				job.Application `yaml:",inline"`
			}
			if err := yaml.NodeToValue(body, &v, yaml.DisallowUnknownField()); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if err := v.Application.Validate(); err != nil {
				return nil, fmt.Errorf("%s: application %s: %w", where, v.Name, err)
			}
			d.application = &v.Application
		case "":
			return nil, fmt.Errorf(`%s: no kind: say "kind: cluster", "kind: command" or "kind: application"`, where)
		default:
			return nil, fmt.Errorf("%s: unknown kind %q: want cluster, command or application", where, head.Kind)
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// splitDocuments cuts a YAML stream at its "---" lines. Each piece keeps its
// place: it is preceded by as many empty lines as came before it, so that the
// parser's line numbers are those of the file. (goccy/go-yaml v1.19 drops every
// document after an empty one when it parses a whole stream; a document
// marker at column 0 cannot occur inside a document, so cutting there is safe.)
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	start, line := 0, 0 // lines before the current piece; lines seen
	for len(data) > 0 {
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l = data[:i+1]
		}
		data = data[len(l):]
		text := bytes.TrimRight(l, "\r\n")
		if bytes.Equal(text, []byte("---")) || bytes.HasPrefix(text, []byte("--- ")) || bytes.HasPrefix(text, []byte("---\t")) {
			if cur != nil {
				docs = append(docs, append(bytes.Repeat([]byte("\n"), start), cur...))
			}
			cur, start = nil, line
		}
		cur = append(cur, l...)
		line++
	}
	if cur != nil {
		docs = append(docs, append(bytes.Repeat([]byte("\n"), start), cur...))
	}
	return docs
}
