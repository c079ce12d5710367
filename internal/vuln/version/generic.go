package version

import (
	"fmt"
	"strings"
)

// genericToken is a run of digits or of letters; every other character only
// separates runs.
type genericToken struct {
	numeric bool
	text    string // letters are lower-cased
}

type genericVersion []genericToken

func parseGeneric(s string) (genericVersion, error) {
	t := s
	if len(t) > 1 && (t[0] == 'v' || t[0] == 'V') && isDigit(t[1]) {
		t = t[1:]
	}
	var v genericVersion
	for i := 0; i < len(t); {
		c := t[i]
		if c <= ' ' || c >= 0x7f {
			return nil, fmt.Errorf("version %q has a space, control or non-ASCII character", s)
		}
		j := i + 1
		switch {
		case isDigit(c):
			for j < len(t) && isDigit(t[j]) {
				j++
			}
			v = append(v, genericToken{numeric: true, text: t[i:j]})
		case isAlpha(c):
			for j < len(t) && isAlpha(t[j]) {
				j++
			}
			v = append(v, genericToken{text: strings.ToLower(t[i:j])})
		}
		i = j
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("version %q has no digits or letters", s)
	}
	return v, nil
}

// compareGeneric compares token by token. A missing token counts as the
// number 0, so trailing ".0"s do not matter, and a letter run sorts below
// any number, so "1.0rc1" < "1.0" < "1.0.1". The order on tokens is total,
// which keeps the comparison transitive.
func compareGeneric(a, b genericVersion) int {
	zero := genericToken{numeric: true, text: "0"}
	for i := 0; i < len(a) || i < len(b); i++ {
		x, y := zero, zero
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		var c int
		switch {
		case x.numeric && y.numeric:
			c = compareNumeric(x.text, y.text)
		case x.numeric:
			c = 1
		case y.numeric:
			c = -1
		default:
			c = strings.Compare(x.text, y.text)
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
