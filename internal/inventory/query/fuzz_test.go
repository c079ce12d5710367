package query

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`product = "gw-100" and tag.region = "eu" and version < "2.4.0"`,
		`(status in ("active", "quarantined") or not metered) and battery < 20 and last_seen_age > 7d`,
		`not (metered or on_mains) and serial not in ("a\"b", "\\")`,
		`tag.hw-rev.x >= "b" or boots = -3 or last_seen_age <= 90m`,
		`version in ("v1.0~rc.1+b", "2") AND NOT on_mains = FALSE`,
		`((((metered))))`, `battery < `, `"unterminated`, `tag.X = 1`, `x = 2.4.0`,
	} {
		f.Add(seed)
	}
	devices := sampleDevices()
	f.Fuzz(func(t *testing.T, src string) {
		q, err := Parse(src, testSchema)
		if err != nil {
			var qe *Error
			if !errors.As(err, &qe) || qe.Offset < 0 || qe.Offset > len(src) {
				t.Fatalf("Parse(%q) = %v; want an *Error with an offset inside the query", src, err)
			}
			return
		}
		canon := q.String()
		// Canonical spacing can push a query at the length limit over it.
		if len(canon) <= maxLen {
			q2, err := Parse(canon, testSchema)
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", canon, src, err)
			}
			if again := q2.String(); again != canon {
				t.Fatalf("canonical form %q of %q parses to %q", canon, src, again)
			}
		}
		var b binder
		cond, err := q.SQL(testSchema, testNow, b.next)
		if err != nil {
			t.Fatalf("SQL(%q): %v", src, err)
		}
		// testSchema's SQL has no quotes, so a quote could only be a value.
		if strings.ContainsAny(cond, `"'`) {
			t.Fatalf("SQL for %q contains a quote: %s", src, cond)
		}
		if n := strings.Count(cond, "$"); n != len(b.args) {
			t.Fatalf("SQL for %q has %d placeholders for %d arguments: %s", src, n, len(b.args), cond)
		}
		for _, d := range devices {
			q.Match(d, testNow)
		}
	})
}
