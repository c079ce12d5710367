package query

import (
	"maps"
	"slices"
	"strings"
)

type parser struct {
	lex   lexer
	s     Schema
	tok   token // the current token
	prev  token // the one before, for "expected … after …"
	depth int
	conds int
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.prev, p.tok = p.tok, t
	return nil
}

func (p *parser) isKeyword(k string) bool {
	return p.tok.kind == tWord && strings.EqualFold(p.tok.text, k)
}

func (p *parser) expected(what string) error {
	if p.prev.text == "" {
		return errorf(p.tok.pos, "expected %s, found %s", what, p.tok)
	}
	return errorf(p.tok.pos, "expected %s after %q, found %s", what, strings.ToLower(p.prev.text), p.tok)
}

func (p *parser) or() (expr, error)  { return p.chain("or", p.and) }
func (p *parser) and() (expr, error) { return p.chain("and", p.unary) }

// chain parses operand { keyword operand }.
func (p *parser) chain(keyword string, operand func() (expr, error)) (expr, error) {
	x, err := operand()
	if err != nil || !p.isKeyword(keyword) {
		return x, err
	}
	l := &logic{or: keyword == "or", args: []expr{x}}
	for p.isKeyword(keyword) {
		if err := p.advance(); err != nil {
			return nil, err
		}
		y, err := operand()
		if err != nil {
			return nil, err
		}
		l.args = append(l.args, y)
	}
	return l, nil
}

// enter bounds the recursion of unary, which deep input could otherwise
// drive into a stack overflow.
func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return errorf(p.tok.pos, "nesting is deeper than %d levels of parentheses and not; simplify the query", maxDepth)
	}
	return p.advance()
}

func (p *parser) unary() (expr, error) {
	switch {
	case p.isKeyword("not"):
		if err := p.enter(); err != nil {
			return nil, err
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		p.depth--
		return &not{x: x}, nil
	case p.tok.kind == tLParen:
		open := p.tok.pos
		if err := p.enter(); err != nil {
			return nil, err
		}
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, errorf(p.tok.pos, `expected "and", "or" or ")" to close the "(" at byte %d, found %s`, open, p.tok)
		}
		p.depth--
		return x, p.advance()
	case p.tok.kind == tWord && !keywords[strings.ToLower(p.tok.text)]:
		return p.condition()
	}
	return nil, p.expected("a condition")
}

// allowedOps lists the operators each kind takes; a Bool field may also
// stand alone.
var allowedOps = map[Kind]string{
	String:  "= != < <= > >= in",
	Version: "= != < <= > >= in",
	Int:     "= != < <= > >= in",
	Bool:    "= != in",
	Age:     "< <= > >=",
}

func (p *parser) condition() (expr, error) {
	c := &cond{pos: p.tok.pos}
	p.conds++
	if p.conds > maxConds {
		return nil, errorf(c.pos, "more than %d conditions; use in (…) or split the query", maxConds)
	}
	if err := p.resolve(c, p.tok.text); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	opTok := p.tok
	switch {
	case p.tok.kind == tOp:
		c.op = p.tok.text
	case p.isKeyword("in"):
		c.op = "in"
	case p.isKeyword("not"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.isKeyword("in") {
			return nil, p.expected(`"in"`)
		}
		c.op = "not in"
	case c.field.Kind == Bool:
		c.vals = []any{true}
		return c, nil
	default:
		return nil, errorf(p.tok.pos, "expected %s after %s, found %s", orList(allowedOps[c.field.Kind]), c.field.Name, p.tok)
	}
	word := strings.TrimPrefix(c.op, "not ")
	if !slices.Contains(strings.Fields(allowedOps[c.field.Kind]), word) {
		alone := ""
		if c.field.Kind == Bool {
			alone = ", or the field alone"
		}
		return nil, errorf(opTok.pos, "%q does not apply to %s field %s; use %s%s", c.op, c.field.Kind, c.field.Name, orList(allowedOps[c.field.Kind]), alone)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if word == "in" {
		return c, p.list(c)
	}
	v, err := p.value(c)
	if err != nil {
		return nil, err
	}
	c.vals = []any{v}
	return c, nil
}

// orList writes space-separated operators as "a, b or c".
func orList(ops string) string {
	f := strings.Fields(ops)
	return strings.Join(f[:len(f)-1], ", ") + " or " + f[len(f)-1]
}

// resolve sets c's field from the word that names it.
func (p *parser) resolve(c *cond, name string) error {
	if f, ok := p.s.Fields[name]; ok {
		c.field = f
		return nil
	}
	if key, ok := strings.CutPrefix(name, p.s.TagPrefix); ok && p.s.TagPrefix != "" {
		if !isTagKey(key) {
			return errorf(c.pos+len(p.s.TagPrefix), "tag key %q: use 1 to %d of a-z 0-9 _ . -", key, maxTagKey)
		}
		c.field = Field{Name: name, Kind: String}
		c.tag = key
		return nil
	}
	names := slices.Sorted(maps.Keys(p.s.Fields))
	best, bestDist := "", 0
	for _, n := range names {
		if d := editDistance(strings.ToLower(name), n); best == "" || d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" && bestDist <= max(2, len(name)/2) {
		return errorf(c.pos, "unknown field %q; did you mean %q?", name, best)
	}
	if p.s.TagPrefix != "" {
		names = append(names, p.s.TagPrefix+"<key>")
	}
	return errorf(c.pos, "unknown field %q; the fields are %s", name, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			diag, row[j] = row[j], min(row[j]+1, row[j-1]+1, diag+cost)
		}
	}
	return row[len(b)]
}

func (p *parser) list(c *cond) error {
	if p.tok.kind != tLParen {
		return p.expected(`"("`)
	}
	if err := p.advance(); err != nil {
		return err
	}
	if p.tok.kind == tRParen {
		return errorf(p.tok.pos, "empty list after %s; give at least one value", c.op)
	}
	for {
		v, err := p.value(c)
		if err != nil {
			return err
		}
		c.vals = append(c.vals, v)
		switch p.tok.kind {
		case tComma:
			if err := p.advance(); err != nil {
				return err
			}
		case tRParen:
			return p.advance()
		default:
			return errorf(p.tok.pos, `expected "," or ")" in the list, found %s`, p.tok)
		}
	}
}

// valueKinds says which kind of field each kind of literal is for.
var valueKinds = map[tokKind]Kind{tString: String, tInt: Int, tDuration: Age}

// kindHelp says how error messages name each kind and its values.
var kindHelp = map[Kind]struct{ noun, example string }{
	String:  {"a string field", `a quoted string like "eu"`},
	Version: {"a version field", `a quoted version like "2.4.0"`},
	Int:     {"an integer field", "an integer like 20"},
	Bool:    {"a boolean field", "true or false"},
	Age:     {"an age field", "a duration like 30m, 12h or 7d"},
}

// value parses one literal and checks that it suits c's field. An
// unquoted word counts as a literal of the wrong kind, so that its error
// shows how to write the value.
func (p *parser) value(c *cond) (any, error) {
	t := p.tok
	v, lit := t.val, valueKinds[t.kind]
	switch {
	case p.isKeyword("true"), p.isKeyword("false"):
		v, lit = p.isKeyword("true"), Bool
	case v == nil && (t.kind != tWord || keywords[strings.ToLower(t.text)]):
		return nil, p.expected("a value")
	}
	want := c.field.Kind
	if want == Version {
		want = String
	}
	if lit != want {
		help := kindHelp[c.field.Kind]
		if c.tag != "" {
			help.noun = "a tag"
		}
		msg := "%s is %s: expected %s, found %s"
		if lit == Age {
			msg += "; durations apply only to age fields"
		}
		return nil, errorf(t.pos, msg, c.field.Name, help.noun, help.example, t)
	}
	return v, p.advance()
}
