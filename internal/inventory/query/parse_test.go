package query

import (
	"errors"
	"strings"
	"testing"
)

// testSchema mirrors what the server defines: devices d, tags in device_tags.
// Its SQL has no quote characters, so FuzzParse can tell that no value
// reached the SQL text.
var testSchema = Schema{
	Fields: map[string]Field{
		"product":       {Name: "product", Kind: String, Column: "d.product"},
		"status":        {Name: "status", Kind: String, Column: "d.status"},
		"serial":        {Name: "serial", Kind: String, Column: "d.serial", Nullable: true},
		"version":       {Name: "version", Kind: Version, Column: "d.version_key", Nullable: true},
		"battery":       {Name: "battery", Kind: Int, Column: "d.battery", Nullable: true},
		"boots":         {Name: "boots", Kind: Int, Column: "d.boots"},
		"metered":       {Name: "metered", Kind: Bool, Column: "d.metered", Nullable: true},
		"on_mains":      {Name: "on_mains", Kind: Bool, Column: "d.on_mains"},
		"last_seen_age": {Name: "last_seen_age", Kind: Age, Column: "d.last_seen"},
	},
	TagPrefix: "tag.",
	TagSQL: func(keyPH, op, valuePH string) string {
		return "EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = d.id AND t.key = " + keyPH + " AND t.value " + op + " " + valuePH + ")"
	},
}

func TestParseCanonical(t *testing.T) {
	cases := []struct{ in, want string }{
		{`product = "gw-100" and tag.region = "eu" and version < "2.4.0"`,
			`product = "gw-100" and tag.region = "eu" and version < "2.4.0"`},
		{`(status in ("active", "quarantined") or not metered) and battery < 20 and last_seen_age > 7d`,
			`(status in ("active", "quarantined") or not metered) and battery < 20 and last_seen_age > 7d`},
		{`product="a"AND(battery<=-5 Or boots>=0)`, `product = "a" and (battery <= -5 or boots >= 0)`},
		{"metered\tand\nnot\ron_mains", "metered and not on_mains"},
		{`((metered))`, `metered`},
		{`(metered or on_mains) or (battery > 1 or boots < 2)`, `metered or on_mains or battery > 1 or boots < 2`},
		{`metered and (on_mains and boots = 1)`, `metered and on_mains and boots = 1`},
		{`not (metered or on_mains)`, `not (metered or on_mains)`},
		{`not (metered and on_mains)`, `not (metered and on_mains)`},
		{`not not metered`, `not not metered`},
		{`not battery < 20`, `not battery < 20`},
		{`serial = "a\"b\\c"`, `serial = "a\"b\\c"`},
		{`serial NOT IN ("x")`, `serial not in ("x")`},
		{`metered = TRUE`, `metered = true`},
		{`metered in (true,false)`, `metered in (true, false)`},
		{`battery = 007`, `battery = 7`},
		{`battery = -0`, `battery = 0`},
		{`last_seen_age > 60m`, `last_seen_age > 1h`},
		{`last_seen_age <= 48h`, `last_seen_age <= 2d`},
		{`last_seen_age >= 90s`, `last_seen_age >= 90s`},
		{`last_seen_age < 0d`, `last_seen_age < 0d`},
		{`tag.hw-rev.x_1 >= "b"`, `tag.hw-rev.x_1 >= "b"`},
		{`serial = ""`, `serial = ""`},
		{"serial = \"\xff\n\"", "serial = \"\xff\n\""},
		{`version in ("1.0", "v1.0")`, `version in ("1.0", "v1.0")`},
	}
	for _, c := range cases {
		q, err := Parse(c.in, testSchema)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := q.String(); got != c.want {
			t.Errorf("Parse(%q).String() = %q, want %q", c.in, got, c.want)
		}
		q2, err := Parse(q.String(), testSchema)
		if err != nil || q2.String() != c.want {
			t.Errorf("canonical form %q does not round-trip: %v", q.String(), err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		in     string
		offset int
		msg    string // a fragment of the message
	}{
		{``, 0, "empty query"},
		{"  \n ", 4, "empty query"},
		{`batery < 20`, 0, `unknown field "batery"; did you mean "battery"?`},
		{`Product = "a"`, 0, `did you mean "product"?`},
		{`zzzzzzzzzzzzzz = 1`, 0, `the fields are battery, boots, last_seen_age, metered, on_mains, product, serial, status, version, tag.<key>`},
		{`tag.Region = "eu"`, 4, `tag key "Region": use 1 to 64 of a-z 0-9 _ . -`},
		{`tag. = "eu"`, 4, `tag key ""`},
		{`tag.` + strings.Repeat("k", 65) + ` = "eu"`, 4, `tag key`},
		{`battery = "x"`, 10, `battery is an integer field: expected an integer like 20, found string "x"`},
		{`product = 5`, 10, `product is a string field: expected a quoted string like "eu", found integer 5`},
		{`version < 2`, 10, `version is a version field: expected a quoted version like "2.4.0"`},
		{`version < 2.4.0`, 10, `malformed number "2.4.0"; quote strings and versions, as in "2.4.0"`},
		{`metered = "yes"`, 10, `metered is a boolean field: expected true or false`},
		{`tag.region = 1`, 13, `tag.region is a tag: expected a quoted string`},
		{`metered < true`, 8, `"<" does not apply to boolean field metered; use =, != or in, or the field alone`},
		{`battery > 7d`, 10, `battery is an integer field: expected an integer like 20, found duration 7d; durations apply only to age fields`},
		{`last_seen_age > 7`, 16, `last_seen_age is an age field: expected a duration like 30m, 12h or 7d, found integer 7`},
		{`last_seen_age = 7d`, 14, `"=" does not apply to age field last_seen_age; use <, <=, > or >=`},
		{`last_seen_age in (7d)`, 14, `"in" does not apply to age field`},
		{`last_seen_age > 7w`, 17, `unknown duration unit "w" in 7w; use s, m, h or d`},
		{`last_seen_age > -7d`, 16, `negative`},
		{`last_seen_age > 36501d`, 16, `longer than the limit of 36500d`},
		{`battery > 99999999999999999999`, 10, `out of the 64-bit range`},
		{`product = "gw`, 10, `unterminated string`},
		{`product = 'gw'`, 10, `strings take double quotes`},
		{`product = "a\n"`, 12, `unknown escape`},
		{`metered metered`, 8, `expected "and", "or" or end of query, found "metered"`},
		{`metered)`, 7, `unbalanced ")"`},
		{`(metered`, 8, `expected "and", "or" or ")" to close the "(" at byte 0, found end of query`},
		{`product = "gw" and battery <`, 28, `expected a value after "<", found end of query`},
		{`battery < and`, 10, `expected a value after "<", found "and"`},
		{`product = gw`, 10, `product is a string field: expected a quoted string like "eu", found "gw"`},
		{`battery = low`, 10, `battery is an integer field: expected an integer like 20, found "low"`},
		{`metered AND`, 11, `expected a condition after "and", found end of query`},
		{`and metered`, 0, `expected a condition, found "and"`},
		{`battery`, 7, `expected =, !=, <, <=, >, >= or in after battery, found end of query`},
		{`battery 5`, 8, `expected =, !=, <, <=, >, >= or in after battery`},
		{`battery not (1)`, 12, `expected "in" after "not", found "("`},
		{`battery in ()`, 12, `empty list after in`},
		{`battery not in ()`, 16, `empty list after not in`},
		{`battery in (1 2)`, 14, `expected "," or ")" in the list, found integer 2`},
		{`battery in (1,)`, 14, `expected a value after ",", found ")"`},
		{`battery in 1`, 11, `expected "(" after "in", found integer 1`},
		{`battery ! 1`, 8, `unexpected "!"`},
		{`battery == 1`, 9, `expected a value after "=", found "="`},
		{`battery = 1 & metered`, 12, `unexpected character '&'`},
		{`product = "a" é`, 14, `unexpected character 'é'`},
		{strings.Repeat("(", 33) + "metered" + strings.Repeat(")", 33), 32, "nesting is deeper than 32 levels"},
		{strings.Repeat("not ", 33) + "metered", 128, "nesting is deeper than 32 levels"},
		{strings.Repeat("metered and ", 64) + "metered", 768, "more than 64 conditions"},
		{`metered or ` + strings.Repeat(" ", 4096), 4096, "the query is 4107 bytes; the limit is 4096"},
	}
	for _, c := range cases {
		_, err := Parse(c.in, testSchema)
		var qe *Error
		if !errors.As(err, &qe) {
			t.Errorf("Parse(%q) = %v, want an *Error", c.in, err)
			continue
		}
		if qe.Offset != c.offset || !strings.Contains(qe.Msg, c.msg) {
			t.Errorf("Parse(%q):\n got %v\nwant at byte %d: …%s…", c.in, err, c.offset, c.msg)
		}
	}
}

func TestParseLimitsAreInclusive(t *testing.T) {
	for _, src := range []string{
		strings.Repeat("(", 32) + "metered" + strings.Repeat(")", 32),
		strings.Repeat("not ", 32) + "metered",
		strings.Repeat("metered and ", 63) + "metered",
		"metered" + strings.Repeat(" ", 4096-7),
	} {
		if _, err := Parse(src, testSchema); err != nil {
			t.Errorf("a query at the limit is refused: %v", err)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse(`battery < 20 and battery <`, testSchema)
	want := `query: at byte 26: expected a value after "<", found end of query`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestParseRejectsBadSchemas(t *testing.T) {
	tagSQL := testSchema.TagSQL
	cases := map[string]Schema{
		"filed under":      {Fields: map[string]Field{"a": {Name: "b", Kind: Int, Column: "a"}}},
		"use lowercase":    {Fields: map[string]Field{"Ab": {Name: "Ab", Kind: Int, Column: "a"}}},
		"keyword":          {Fields: map[string]Field{"in": {Name: "in", Kind: Int, Column: "a"}}},
		"tag prefix":       {Fields: map[string]Field{"tag_x": {Name: "tag_x", Kind: Int, Column: "a"}}, TagPrefix: "tag_", TagSQL: tagSQL},
		"no valid Kind":    {Fields: map[string]Field{"a": {Name: "a", Column: "a"}}},
		"no Column":        {Fields: map[string]Field{"a": {Name: "a", Kind: Int}}},
		"TagPrefix \"#\"":  {TagPrefix: "#"},
		"TagPrefix \"T.\"": {TagPrefix: "T."},
	}
	for want, s := range cases {
		_, err := Parse("x = 1", s)
		var qe *Error
		if err == nil || errors.As(err, &qe) || !strings.Contains(err.Error(), want) {
			t.Errorf("schema %+v: got %v, want a schema error saying %q", s, err, want)
		}
	}
}
