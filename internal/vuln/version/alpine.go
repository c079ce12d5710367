package version

import (
	"fmt"
	"strings"
)

// This is a port of apk-tools' src/version.c (the tokenizer of apk-tools
// 2.14 and 3.x). The token kinds are declared in apk's order, which is part
// of the semantics: when two versions agree up to where one has a token kind
// the other does not, the later kind sorts lower.
type apkToken int

const (
	apkInitialDigit apkToken = iota
	apkDigit
	apkLetter
	apkSuffix
	apkSuffixNo
	apkCommitHash
	apkRevisionNo
	apkEnd
	apkInvalid
)

// Suffixes before apkNone are pre-releases, those after it post-releases.
const (
	apkSuffixInvalid = iota
	apkAlpha
	apkBeta
	apkPre
	apkRC
	apkNone
	apkCVS
	apkSVN
	apkGit
	apkHg
	apkP
)

var apkSuffixes = map[string]int{
	"alpha": apkAlpha, "beta": apkBeta, "pre": apkPre, "rc": apkRC,
	"cvs": apkCVS, "svn": apkSVN, "git": apkGit, "hg": apkHg, "p": apkP,
}

type apkState struct {
	token  apkToken
	suffix int
	value  string // the token's text: digits, letter, suffix word or hash
	rest   string
}

// alpineVersion is a validated apk version.
type alpineVersion string

func parseAlpine(s string) (alpineVersion, error) {
	t := apkFirst(s)
	for t.token < apkEnd {
		t.next()
	}
	if t.token != apkEnd {
		return "", fmt.Errorf("alpine version %q is not digits{.digits}[letter]{_suffix[digits]}[~hash][-rN]", s)
	}
	return alpineVersion(s), nil
}

func apkFirst(s string) apkState {
	t := apkState{token: apkInitialDigit, rest: s}
	t.digits()
	return t
}

func (t *apkState) digits() {
	n := 0
	for n < len(t.rest) && isDigit(t.rest[n]) {
		n++
	}
	t.value, t.rest = t.rest[:n], t.rest[n:]
	if n == 0 {
		t.token = apkInvalid
	}
}

// next reads the following token, checking that it may follow the current one.
func (t *apkState) next() {
	if t.rest == "" {
		t.token = apkEnd
		return
	}
	switch c := t.rest[0]; {
	case 'a' <= c && c <= 'z':
		if t.token > apkDigit {
			t.token = apkInvalid
			return
		}
		t.token, t.value, t.rest = apkLetter, t.rest[:1], t.rest[1:]
	case c == '.' || isDigit(c):
		if c == '.' {
			if t.token > apkDigit {
				t.token = apkInvalid
				return
			}
			t.rest = t.rest[1:]
		}
		switch t.token {
		case apkInitialDigit, apkDigit:
			t.token = apkDigit
		case apkSuffix:
			t.token = apkSuffixNo
		default:
			t.token = apkInvalid
			return
		}
		t.digits()
	case c == '_':
		if t.token > apkSuffixNo {
			t.token = apkInvalid
			return
		}
		n := 1
		for n < len(t.rest) && 'a' <= t.rest[n] && t.rest[n] <= 'z' {
			n++
		}
		t.value, t.rest = t.rest[1:n], t.rest[n:]
		t.suffix = apkSuffixes[t.value]
		if t.suffix == apkSuffixInvalid {
			t.token = apkInvalid
			return
		}
		t.token = apkSuffix
	case c == '~':
		if t.token >= apkCommitHash {
			t.token = apkInvalid
			return
		}
		n := 1
		for n < len(t.rest) && (isDigit(t.rest[n]) || 'a' <= t.rest[n] && t.rest[n] <= 'f') {
			n++
		}
		if n == 1 {
			t.token = apkInvalid
			return
		}
		t.token, t.value, t.rest = apkCommitHash, t.rest[1:n], t.rest[n:]
	case c == '-':
		if t.token >= apkRevisionNo || !strings.HasPrefix(t.rest, "-r") {
			t.token = apkInvalid
			return
		}
		t.token, t.rest = apkRevisionNo, t.rest[2:]
		t.digits()
	default:
		t.token = apkInvalid
	}
}

// compare is apk's token_cmp for two tokens of the same kind.
func (t *apkState) compare(u *apkState) int {
	switch t.token {
	case apkDigit:
		if t.value[0] == '0' || u.value[0] == '0' {
			// A leading zero makes apk compare the digits as text, as Gentoo does.
			return strings.Compare(t.value, u.value)
		}
		return compareNumeric(t.value, u.value)
	case apkInitialDigit, apkSuffixNo, apkRevisionNo:
		return compareNumeric(t.value, u.value)
	case apkSuffix:
		return t.suffix - u.suffix
	}
	// Letters compare by byte value and commit hashes as text.
	return strings.Compare(t.value, u.value)
}

func compareAlpine(a, b alpineVersion) int {
	ta, tb := apkFirst(string(a)), apkFirst(string(b))
	for ta.token == tb.token && ta.token < apkEnd {
		if c := ta.compare(&tb); c != 0 {
			return c
		}
		ta.next()
		tb.next()
	}
	if ta.token == tb.token {
		return 0
	}
	// Equal so far: the longer version is newer unless it goes on with a
	// pre-release suffix.
	if ta.token == apkSuffix && ta.suffix < apkNone {
		return -1
	}
	if tb.token == apkSuffix && tb.suffix < apkNone {
		return 1
	}
	if ta.token > tb.token {
		return -1
	}
	return 1
}
