package query

import (
	"cmp"
	"strconv"
	"strings"
)

// A version is compared as a sequence of elements. The kinds are declared
// in the order they sort at one position: "~" before everything (Debian),
// then the start of a pre-release (semver), then the end of the version,
// then numbers, then alphabetic runs (semver puts numeric identifiers
// before alphanumeric ones).
type elemKind byte

const (
	elemTilde elemKind = iota
	elemPre
	elemEnd
	elemNum
	elemAlpha
)

type elem struct {
	kind elemKind
	text string // elemNum: digits without leading zeros; elemAlpha: the run
}

func (a elem) compare(b elem) int {
	if a.kind != b.kind {
		return cmp.Compare(a.kind, b.kind)
	}
	if a.kind == elemNum {
		// Comparing lengths first orders numbers of any size without parsing them.
		if c := cmp.Compare(len(a.text), len(b.text)); c != 0 {
			return c
		}
	}
	return strings.Compare(a.text, b.text)
}

// versionScanner yields the elements of a version one at a time, so that
// CompareVersions does not allocate.
type versionScanner struct {
	s   string
	pre bool // the first "-" has been seen; later ones only separate
}

func scanVersion(v string) versionScanner {
	if i := strings.IndexByte(v, '+'); i >= 0 {
		v = v[:i] // build metadata does not order
	}
	if len(v) > 1 && (v[0] == 'v' || v[0] == 'V') && isDigit(v[1]) {
		v = v[1:]
	}
	return versionScanner{s: v}
}

func (sc *versionScanner) next() elem {
	for sc.s != "" {
		c := sc.s[0]
		switch {
		case c == '~':
			sc.s = sc.s[1:]
			return elem{kind: elemTilde}
		case c == '-' && !sc.pre:
			sc.s, sc.pre = sc.s[1:], true
			return elem{kind: elemPre}
		case c == '.' || c == '-' || c == '_':
			sc.s = sc.s[1:]
		case isDigit(c):
			n := 1
			for n < len(sc.s) && isDigit(sc.s[n]) {
				n++
			}
			e := elem{kind: elemNum, text: strings.TrimLeft(sc.s[:n], "0")}
			sc.s = sc.s[n:]
			return e
		default:
			n := 1
			for n < len(sc.s) && !isDigit(sc.s[n]) && !strings.ContainsRune(".-_~", rune(sc.s[n])) {
				n++
			}
			e := elem{kind: elemAlpha, text: sc.s[:n]}
			sc.s = sc.s[n:]
			return e
		}
	}
	return elem{kind: elemEnd}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// CompareVersions orders two version strings and returns -1, 0 or +1.
//
// A version is read as runs of digits and runs of other characters. The
// separators "." and "_" and every "-" but the first only split runs, so
// "1.2", "1_2" and "1..2" are equal. Numbers compare numerically at any
// length, ignoring leading zeros; other runs compare bytewise. A leading "v"
// before a digit and everything from the first "+" (build metadata) are
// ignored.
//
// At any position, a "~" sorts first, so "1.0~beta" < "1.0" (Debian); the
// first "-" starts a pre-release, which sorts before the release it
// qualifies, so "1.0.0-rc.1" < "1.0.0" (semver; Debian revisions such as
// "1.0-1" therefore sort before "1.0" too); then comes the end of the
// version, so "1.0" < "1.0.0" (missing parts are not zeros); then numbers,
// then other runs, so "1.0.0-alpha.1" < "1.0.0-alpha.beta". This reproduces
// every ordering in the semver 2.0.0 specification.
func CompareVersions(a, b string) int {
	sa, sb := scanVersion(a), scanVersion(b)
	for {
		ea, eb := sa.next(), sb.next()
		if c := ea.compare(eb); c != 0 || ea.kind == elemEnd {
			return c
		}
	}
}

// Characters of a version key. Each element starts with a marker below '?'
// and ordered like the element kinds; the text of an alphabetic run uses
// only bytes from '?' up, so a shorter run sorts before a longer one that
// starts the same, as CompareVersions has it.
const (
	keyTilde = '!'
	keyPre   = '#'
	keyEnd   = '$'
	keyNum   = '.'
	keyAlpha = ':'
	keyLow   = '?' // escapes a byte below '@' as '?' and two hex digits
	keyHigh  = '~' // escapes a byte above '}' as '~' and two hex digits
)

// VersionKey returns a string whose bytewise order is the order of
// CompareVersions: strings.Compare(VersionKey(a), VersionKey(b)) has the
// sign of CompareVersions(a, b), and equal versions get equal keys. The key
// is printable ASCII, so it fits any text column; store it in an indexed
// column with a bytewise collation (SQLite's default BINARY, PostgreSQL's
// COLLATE "C") to compare versions in SQL.
func VersionKey(v string) string {
	var b strings.Builder
	sc := scanVersion(v)
	for {
		e := sc.next()
		switch e.kind {
		case elemTilde:
			b.WriteByte(keyTilde)
		case elemPre:
			b.WriteByte(keyPre)
		case elemEnd:
			b.WriteByte(keyEnd)
			return b.String()
		case elemNum:
			// The digit count, prefixed by the length of the digit count,
			// makes longer numbers sort after shorter ones at any size.
			n := strconv.Itoa(len(e.text))
			b.WriteByte(keyNum)
			b.WriteByte(byte('0' + len(n)))
			b.WriteString(n)
			b.WriteString(e.text)
		case elemAlpha:
			b.WriteByte(keyAlpha)
			for i := 0; i < len(e.text); i++ {
				c := e.text[i]
				switch {
				case c < '@':
					b.WriteByte(keyLow)
					writeHex(&b, c)
				case c > '}':
					b.WriteByte(keyHigh)
					writeHex(&b, c)
				default:
					b.WriteByte(c)
				}
			}
		}
	}
}

func writeHex(b *strings.Builder, c byte) {
	const digits = "0123456789ABCDEF"
	b.WriteByte(digits[c>>4])
	b.WriteByte(digits[c&15])
}
