package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

func (c *console) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes tab separated rows as aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// dash stands in for an empty cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clock formats a time in the console's zone; layout is one of the two below.
func (c *console) clock(t *time.Time, layout string) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.In(c.loc).Format(layout)
}

const (
	cellTime = "2006-01-02 15:04:05"
	longTime = "2006-01-02 15:04:05 MST"
)

// age is how long ago t was, in one unit: 45s, 12m, 5h, 3d.
func (c *console) age(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	d := max(c.now().Sub(*t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}
