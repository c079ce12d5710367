package query

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tString
	tInt
	tDuration
	tOp
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	pos  int
	text string // as written
	val  any    // tString: string, tInt: int64, tDuration: time.Duration
}

// String describes the token for error messages.
func (t token) String() string {
	text := t.text
	if len(text) > 40 {
		text = text[:40] + "…"
	}
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return "string " + text
	case tInt:
		return "integer " + text
	case tDuration:
		return "duration " + text
	}
	return strconv.Quote(text)
}

var keywords = map[string]bool{"and": true, "or": true, "not": true, "in": true, "true": true, "false": true}

// units are the duration suffixes, largest first so that formatDuration
// picks the largest whole one.
var units = []struct {
	suffix string
	d      time.Duration
}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}}

func formatDuration(d time.Duration) string {
	u := units[len(units)-1] // every duration the lexer makes is whole seconds
	for _, big := range units {
		if d%big.d == 0 {
			u = big
			break
		}
	}
	return strconv.FormatInt(int64(d/u.d), 10) + u.suffix
}

type lexer struct {
	src string
	pos int
}

// Word characters include . and - so that tag references such as
// tag.hw-rev are one word; the language has no arithmetic they could clash with.
func isWordByte(c byte) bool {
	return isLower(c) || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_' || c == '.' || c == '-'
}

func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) && strings.IndexByte(" \t\r\n", l.src[l.pos]) >= 0 {
		l.pos++
	}
	start := l.pos
	if start == len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	tok := func(k tokKind, n int) (token, error) {
		l.pos += n
		return token{kind: k, pos: start, text: l.src[start:l.pos]}, nil
	}
	rest := l.src[start:]
	c := rest[0]
	switch {
	case c == '(':
		return tok(tLParen, 1)
	case c == ')':
		return tok(tRParen, 1)
	case c == ',':
		return tok(tComma, 1)
	case c == '=':
		return tok(tOp, 1)
	case c == '<' || c == '>':
		if strings.HasPrefix(rest[1:], "=") {
			return tok(tOp, 2)
		}
		return tok(tOp, 1)
	case c == '!':
		if strings.HasPrefix(rest[1:], "=") {
			return tok(tOp, 2)
		}
		return token{}, errorf(start, `unexpected "!"; write != for "not equal" or not to negate`)
	case c == '"':
		return l.string()
	case c == '\'':
		return token{}, errorf(start, `strings take double quotes, as in "eu"`)
	case isDigit(c) || c == '-' && len(rest) > 1 && isDigit(rest[1]):
		return l.number()
	case c == '_' || isLower(c) || 'A' <= c && c <= 'Z':
		n := 1
		for n < len(rest) && isWordByte(rest[n]) {
			n++
		}
		return tok(tWord, n)
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return token{}, errorf(start, "unexpected character %q; expected a field, a value, an operator or a parenthesis", r)
}

func (l *lexer) string() (token, error) {
	start := l.pos
	var b strings.Builder
	for i := start + 1; i < len(l.src); i++ {
		switch c := l.src[i]; c {
		case '"':
			l.pos = i + 1
			return token{kind: tString, pos: start, text: l.src[start:l.pos], val: b.String()}, nil
		case '\\':
			if i+1 < len(l.src) && (l.src[i+1] == '"' || l.src[i+1] == '\\') {
				i++
				b.WriteByte(l.src[i])
				continue
			}
			return token{}, errorf(i, `unknown escape in string; only \" and \\ are allowed`)
		default:
			b.WriteByte(c)
		}
	}
	return token{}, errorf(start, `unterminated string; add the closing "`)
}

func (l *lexer) number() (token, error) {
	start := l.pos
	n := start + 1
	for n < len(l.src) && isDigit(l.src[n]) {
		n++
	}
	digits := l.src[start:n]
	for n < len(l.src) && isWordByte(l.src[n]) {
		n++
	}
	l.pos = n
	text := l.src[start:n]
	suffix := text[len(digits):]
	if suffix == "" {
		v, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return token{}, errorf(start, "integer %s is out of the 64-bit range", text)
		}
		return token{kind: tInt, pos: start, text: text, val: v}, nil
	}
	if strings.Trim(suffix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return token{}, errorf(start, "malformed number %q; quote strings and versions, as in %q", text, text)
	}
	for _, u := range units {
		if suffix != u.suffix {
			continue
		}
		if digits[0] == '-' {
			return token{}, errorf(start, "duration %s is negative; ages are never negative", text)
		}
		v, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || v > int64(maxAge/u.d) {
			return token{}, errorf(start, "duration %s is longer than the limit of %s", text, formatDuration(maxAge))
		}
		return token{kind: tDuration, pos: start, text: text, val: time.Duration(v) * u.d}, nil
	}
	return token{}, errorf(start+len(digits), "unknown duration unit %q in %s; use s, m, h or d", suffix, text)
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// quote writes s as a string literal the lexer reads back as s.
func quote(s string) string { return `"` + escaper.Replace(s) + `"` }
