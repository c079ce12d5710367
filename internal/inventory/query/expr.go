package query

import (
	"cmp"
	"strconv"
	"strings"
	"time"
)

// expr is a node of the syntax tree. Each node prints itself, evaluates
// itself and compiles itself, so the three stay side by side.
type expr interface {
	write(b *strings.Builder)
	match(r Record, now time.Time) bool
	sql(c *compiler) (string, error)
}

type compiler struct {
	s    Schema
	now  time.Time
	next func(arg any) string
}

// logic is a chain of "and"s or of "or"s.
type logic struct {
	or   bool
	args []expr
}

func (l *logic) write(b *strings.Builder) {
	sep := " and "
	if l.or {
		sep = " or "
	}
	for i, x := range l.args {
		if i > 0 {
			b.WriteString(sep)
		}
		inner, isLogic := x.(*logic)
		writeOperand(b, x, isLogic && inner.or && !l.or)
	}
}

func writeOperand(b *strings.Builder, x expr, parens bool) {
	if !parens {
		x.write(b)
		return
	}
	b.WriteByte('(')
	x.write(b)
	b.WriteByte(')')
}

func (l *logic) match(r Record, now time.Time) bool {
	for _, x := range l.args {
		if x.match(r, now) == l.or {
			return l.or
		}
	}
	return !l.or
}

func (l *logic) sql(c *compiler) (string, error) {
	parts := make([]string, len(l.args))
	for i, x := range l.args {
		s, err := x.sql(c)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	sep := " AND "
	if l.or {
		sep = " OR "
	}
	return "(" + strings.Join(parts, sep) + ")", nil
}

type not struct{ x expr }

func (n *not) write(b *strings.Builder) {
	b.WriteString("not ")
	_, isLogic := n.x.(*logic)
	writeOperand(b, n.x, isLogic)
}

func (n *not) match(r Record, now time.Time) bool { return !n.x.match(r, now) }

func (n *not) sql(c *compiler) (string, error) {
	s, err := n.x.sql(c)
	if err != nil {
		return "", err
	}
	// A comparison with NULL is NULL, and NOT NULL is still not true; Match
	// counts the comparison as false, so "not" must see false too.
	return "NOT COALESCE(" + s + ", FALSE)", nil
}

// cond is one condition on a field or a tag.
type cond struct {
	pos   int    // of the field name, for errors from SQL
	field Field  // as Parse resolved it; a tag gets Kind String and its full name
	tag   string // the tag key, for tag conditions
	op    string // = != < <= > >= in "not in", or "" for a Bool field alone
	vals  []any  // string, int64, bool or time.Duration, by the field's Kind
}

func (c *cond) write(b *strings.Builder) {
	b.WriteString(c.field.Name)
	if c.op == "" {
		return
	}
	b.WriteString(" " + c.op + " ")
	if !c.isList() {
		b.WriteString(literal(c.vals[0]))
		return
	}
	b.WriteByte('(')
	for i, v := range c.vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(literal(v))
	}
	b.WriteByte(')')
}

func literal(v any) string {
	switch v := v.(type) {
	case string:
		return quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	}
	return formatDuration(v.(time.Duration))
}

func (c *cond) isList() bool   { return c.op == "in" || c.op == "not in" }
func (c *cond) negative() bool { return c.op == "!=" || c.op == "not in" }

func (c *cond) match(r Record, now time.Time) bool {
	var v any
	var ok bool
	if c.tag != "" {
		v, ok = r.Tag(c.tag)
	} else {
		v, ok = r.Field(c.field.Name)
	}
	if c.field.Kind == Age {
		return c.matchAge(v, ok, now)
	}
	if !ok || !c.field.Kind.holds(v) {
		// NULL fails all but != and not in, which SQL lets pass only for
		// Nullable columns and for missing tags.
		return c.negative() && (c.tag != "" || c.field.Nullable)
	}
	switch c.op {
	case "<":
		return c.field.Kind.order(v, c.vals[0]) < 0
	case "<=":
		return c.field.Kind.order(v, c.vals[0]) <= 0
	case ">":
		return c.field.Kind.order(v, c.vals[0]) > 0
	case ">=":
		return c.field.Kind.order(v, c.vals[0]) >= 0
	}
	for _, lit := range c.vals {
		if c.field.Kind.order(v, lit) == 0 {
			return !c.negative()
		}
	}
	return c.negative()
}

func (c *cond) matchAge(v any, ok bool, now time.Time) bool {
	t, isTime := v.(time.Time)
	if !ok || !isTime || t.IsZero() {
		return c.op == ">" || c.op == ">=" // never seen: older than any age
	}
	// Compare in µs, as SQL does, so the two agree at the boundary.
	seen, bound := t.UnixMicro(), c.bound(now)
	switch c.op {
	case ">":
		return seen < bound
	case ">=":
		return seen <= bound
	case "<":
		return seen > bound
	}
	return seen >= bound
}

// bound is the time an Age condition's device was seen at when its age was
// exactly the condition's duration, in µs since the epoch.
func (c *cond) bound(now time.Time) int64 {
	return now.Add(-c.vals[0].(time.Duration)).UnixMicro()
}

// holds reports whether v, from a Record, is a value of kind k.
func (k Kind) holds(v any) bool {
	switch v.(type) {
	case string:
		return k == String || k == Version
	case int64:
		return k == Int
	case bool:
		return k == Bool
	}
	return false
}

// order compares a Record's value with a literal of kind k. Bool values
// are only compared for equality.
func (k Kind) order(v, lit any) int {
	switch k {
	case Version:
		return CompareVersions(v.(string), lit.(string))
	case Int:
		return cmp.Compare(v.(int64), lit.(int64))
	case Bool:
		if v.(bool) == lit.(bool) {
			return 0
		}
		return 1
	}
	return strings.Compare(v.(string), lit.(string))
}

var sqlOps = map[string]string{"": "=", "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "in": "IN", "not in": "NOT IN"}

// ageOps turns "age op d" into "seen op bound": an age above d means a
// device seen before now - d.
var ageOps = map[string]string{">": "<", ">=": "<=", "<": ">", "<=": ">="}

func (c *cond) sql(cp *compiler) (string, error) {
	if c.tag != "" {
		return c.tagSQL(cp)
	}
	f, ok := cp.s.Fields[c.field.Name]
	if !ok || f.Kind != c.field.Kind || f.Nullable != c.field.Nullable {
		return "", errorf(c.pos, "field %s differs from the schema the query was parsed with; parse it again with this schema", c.field.Name)
	}
	col := f.Column
	if f.Kind == Age {
		s := col + " " + ageOps[c.op] + " " + cp.next(c.bound(cp.now))
		if c.op == ">" || c.op == ">=" {
			s = "(" + col + " IS NULL OR " + s + ")" // never seen: older than any age
		}
		return s, nil
	}
	s := col + " " + sqlOps[c.op] + " " + c.placeholders(cp)
	if f.Nullable && c.negative() {
		s = "(" + col + " IS NULL OR " + s + ")"
	}
	return s, nil
}

// tagSQL compiles a tag condition. != and not in are the negation of = and
// in, so devices without the tag pass them.
func (c *cond) tagSQL(cp *compiler) (string, error) {
	if cp.s.TagSQL == nil {
		return "", errorf(c.pos, "tag conditions need a schema with TagSQL")
	}
	op := c.op
	switch op {
	case "!=":
		op = "="
	case "not in":
		op = "in"
	}
	key := cp.next(c.tag)
	s := cp.s.TagSQL(key, sqlOps[op], c.placeholders(cp))
	if c.negative() {
		s = "NOT (" + s + ")"
	}
	return s, nil
}

// placeholders binds the values: one placeholder, or a parenthesized list
// for in and not in. Versions are bound as their VersionKey.
func (c *cond) placeholders(cp *compiler) string {
	phs := make([]string, len(c.vals))
	for i, v := range c.vals {
		if c.field.Kind == Version {
			v = VersionKey(v.(string))
		}
		phs[i] = cp.next(v)
	}
	if !c.isList() {
		return phs[0]
	}
	return "(" + strings.Join(phs, ", ") + ")"
}
