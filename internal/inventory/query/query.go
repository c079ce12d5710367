// Package query implements the fleet query language that dynamic device
// groups and device search are written in, for example
//
//	product = "gw-100" and tag.region = "eu" and version < "2.4.0"
//	(status in ("active", "quarantined") or not metered) and battery < 20 and last_seen_age > 7d
//
// Parse checks a query against a Schema of fields the server defines and
// returns a Query, a syntax tree that can be compiled to a parameterized SQL
// condition (SQL binds every value as an argument; no value is ever written
// into the SQL text) or evaluated in memory (Match). Both give the same
// answer for the same device.
//
// Grammar (keywords are case-insensitive, field names case-sensitive):
//
//	query     = or
//	or        = and { "or" and }
//	and       = unary { "and" unary }
//	unary     = "not" unary | "(" or ")" | condition
//	condition = field [ op value | [ "not" ] "in" "(" value { "," value } ")" ]
//	op        = "=" | "!=" | "<" | "<=" | ">" | ">="
//	value     = string | integer | duration | "true" | "false"
//	string    = `"` { byte other than `"` and `\` | `\"` | `\\` } `"`
//	integer   = [ "-" ] digit { digit }
//	duration  = digit { digit } ( "s" | "m" | "h" | "d" )   // d is 24h
//	field     = schema field name | TagPrefix key            // key: [a-z0-9_.-]{1,64}
//
// Types: String and tag fields take strings, Version fields strings ordered
// by CompareVersions, Int fields integers, Bool fields true or false (or
// stand alone: "metered" means "metered = true"), Age fields durations.
// Bool fields allow only =, != and in; Age fields only < <= > >=.
//
// Missing values: a NULL (a Record's missing field) fails every comparison
// except != and not in on a Nullable field, which it passes. A device
// without a tag fails every comparison on it except != and not in. A missing
// time on an Age field means "never": older than any age. "not x" is true
// exactly when x is not.
//
// Limits: 4096 bytes, 64 conditions, 32 levels of parentheses and "not".
package query

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

const (
	maxLen    = 4096
	maxConds  = 64
	maxDepth  = 32
	maxTagKey = 64
	maxAge    = 36500 * 24 * time.Hour // a century: keeps now - age far from overflow
)

// Kind is the type of a field's values.
type Kind int

// The zero Kind is invalid, so a Field without one is caught by Parse.
const (
	String  Kind = iota + 1 // compared bytewise
	Version                 // strings ordered by CompareVersions; the Column holds VersionKey
	Int                     // int64
	Bool                    // true or false
	Age                     // time since a time.Time; the Column holds µs since the epoch
)

func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case Version:
		return "version"
	case Int:
		return "integer"
	case Bool:
		return "boolean"
	case Age:
		return "age"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Field is a queryable attribute of a device.
type Field struct {
	Name string // lowercase letters, digits and _, starting with a letter
	Kind Kind
	// Column is the SQL operand the field compiles to, e.g.
	// "d.installed_version_key": an identifier or a parenthesized expression.
	Column string
	// Nullable marks a Column that can be NULL: != and not in then match
	// NULL (a device without a serial is not serial "x"). Without it, NULL
	// fails every comparison.
	Nullable bool
}

// Schema is the set of fields a query may use.
type Schema struct {
	Fields map[string]Field // by Field.Name
	// TagPrefix, e.g. "tag.", makes "tag.<key>" a String comparison with
	// the device's tag <key>. Empty disables tags. Lowercase letters,
	// digits, _ and ., starting with a letter.
	TagPrefix string
	// TagSQL returns a condition true when the device has the tag keyPH
	// with a value that satisfies "value op valuePH", e.g.
	//	func(keyPH, op, valuePH string) string {
	//		return "EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = d.id AND t.key = " +
	//			keyPH + " AND t.value " + op + " " + valuePH + ")"
	//	}
	// op is one of = < <= > >= IN; for IN, valuePH is a parenthesized
	// list of placeholders. SQL negates it for != and not in.
	TagSQL func(keyPH, op, valuePH string) string
}

// validate reports a schema the language cannot use. These are the
// server's mistakes, not the query author's, so they are plain errors.
func (s Schema) validate() error {
	for _, name := range slices.Sorted(maps.Keys(s.Fields)) {
		f := s.Fields[name]
		switch {
		case f.Name != name:
			return fmt.Errorf("query: schema field %q is filed under %q; file it under its Name", f.Name, name)
		case !isFieldName(name):
			return fmt.Errorf("query: schema field %q: use lowercase letters, digits and _, starting with a letter", name)
		case keywords[name]:
			return fmt.Errorf("query: schema field %q is a keyword of the language; rename it", name)
		case s.TagPrefix != "" && strings.HasPrefix(name, s.TagPrefix):
			return fmt.Errorf("query: schema field %q starts with the tag prefix %q; rename one", name, s.TagPrefix)
		case f.Kind < String || f.Kind > Age:
			return fmt.Errorf("query: schema field %q has no valid Kind", name)
		case f.Column == "":
			return fmt.Errorf("query: schema field %q has no Column", name)
		}
	}
	if s.TagPrefix != "" && (!isLower(s.TagPrefix[0]) || strings.Trim(s.TagPrefix, "abcdefghijklmnopqrstuvwxyz0123456789_.") != "") {
		return fmt.Errorf("query: schema TagPrefix %q: use lowercase letters, digits, _ and ., starting with a letter", s.TagPrefix)
	}
	return nil
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

func isFieldName(s string) bool {
	return s != "" && isLower(s[0]) && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

func isTagKey(s string) bool {
	return s != "" && len(s) <= maxTagKey && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == ""
}

// Error is a problem with a query's text.
type Error struct {
	Offset int    // byte offset into the query where the problem is
	Msg    string // what was wrong and what was expected
}

func (e *Error) Error() string { return fmt.Sprintf("query: at byte %d: %s", e.Offset, e.Msg) }

func errorf(offset int, format string, args ...any) *Error {
	return &Error{Offset: offset, Msg: fmt.Sprintf(format, args...)}
}

// Record is a device as Match sees it.
type Record interface {
	// Field returns the value of a schema field: a string for String and
	// Version fields (the version itself, not its key), an int64 for Int,
	// a bool for Bool, a time.Time for Age (the zero time means never).
	// ok false, or a value of another type, means NULL.
	Field(name string) (value any, ok bool)
	// Tag returns the value of the device's tag key.
	Tag(key string) (value string, ok bool)
}

// Query is a parsed, type-checked query. It is immutable and safe for
// concurrent use.
type Query struct {
	root expr
}

// Parse parses src and checks it against s. Problems with src are returned
// as *Error; any other error means s itself is invalid.
func Parse(src string, s Schema) (*Query, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if len(src) > maxLen {
		return nil, errorf(maxLen, "the query is %d bytes; the limit is %d", len(src), maxLen)
	}
	p := &parser{lex: lexer{src: src}, s: s}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, errorf(p.tok.pos, "empty query; write at least one condition")
	}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	switch {
	case p.tok.kind == tRParen:
		return nil, errorf(p.tok.pos, `unbalanced ")": no "(" to close`)
	case p.tok.kind != tEOF:
		return nil, errorf(p.tok.pos, `expected "and", "or" or end of query, found %s`, p.tok)
	}
	return &Query{root: root}, nil
}

// String returns the query in canonical form: lowercase keywords, single
// spaces, only the parentheses precedence needs, durations in their
// largest whole unit. Parsing it gives the same String.
func (q *Query) String() string {
	var b strings.Builder
	q.root.write(&b)
	return b.String()
}

// Match reports whether r satisfies the query at time now (for Age fields).
// It agrees with what SQL selects.
func (q *Query) Match(r Record, now time.Time) bool { return q.root.match(r, now) }

// SQL compiles the query to a boolean SQL expression over s's Columns and
// TagSQL. next binds one argument and returns its placeholder ("$7"), so
// the condition can join a larger statement; on error, discard what next
// bound. Age fields compare with now minus the age in µs since the epoch.
//
// s should be the schema the query was parsed with; Columns may differ,
// but a field missing from s, or with another Kind or Nullable, is an error.
func (q *Query) SQL(s Schema, now time.Time, next func(arg any) string) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	return q.root.sql(&compiler{s: s, now: now, next: next})
}
