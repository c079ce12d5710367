package ctl

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table writes aligned columns. Cells are cleaned because they hold
// server-supplied text.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = clean(c) // also turns tabs into spaces
	}
	_, _ = io.WriteString(t.tw, strings.Join(cells, "\t")+"\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// printJSON writes one JSON document as the server sent it, indented.
func (s *session) printJSON(raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := s.out.Write(buf.Bytes())
	return err
}

// printJSONList writes list items as one JSON array.
func (s *session) printJSONList(items []json.RawMessage) error {
	b, err := json.Marshal(items)
	if err != nil {
		return err
	}
	return s.printJSON(b)
}

func timestamp(t time.Time) string { return t.Format(time.RFC3339) }

// optTime formats an optional time, or none when it is absent.
func optTime(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return timestamp(*t)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
