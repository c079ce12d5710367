package version

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// debianVersion is a dpkg version split into its three parts.
type debianVersion struct {
	epoch    int
	upstream string
	revision string
}

// parseDebian follows dpkg's parseversion. dpkg only warns about a bad
// character or an upstream part not starting with a digit; those are errors
// here, because such a string in vulnerability data is not a Debian version.
func parseDebian(s string) (debianVersion, error) {
	var v debianVersion
	t := strings.Trim(s, " \t\n\r\v\f") // dpkg ignores surrounding blanks
	if t == "" {
		return v, fmt.Errorf("debian version %q is empty", s)
	}
	if strings.ContainsAny(t, " \t\n\r\v\f") {
		return v, fmt.Errorf("debian version %q has embedded spaces", s)
	}
	rest := t
	if e, after, ok := strings.Cut(t, ":"); ok {
		if e == "" {
			return v, fmt.Errorf("debian version %q: epoch is empty", s)
		}
		if !allDigits(e) {
			return v, fmt.Errorf("debian version %q: epoch %q is not a number", s, e)
		}
		n, err := strconv.Atoi(e)
		if err != nil || n > math.MaxInt32 {
			return v, fmt.Errorf("debian version %q: epoch %q is too big", s, e)
		}
		if after == "" {
			return v, fmt.Errorf("debian version %q: nothing after the epoch", s)
		}
		v.epoch, rest = n, after
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		v.revision = rest[i+1:]
		if v.revision == "" {
			return v, fmt.Errorf("debian version %q: revision is empty", s)
		}
		rest = rest[:i]
	}
	v.upstream = rest
	if v.upstream == "" {
		return v, fmt.Errorf("debian version %q: upstream version is empty", s)
	}
	if !isDigit(v.upstream[0]) {
		return v, fmt.Errorf("debian version %q: upstream version does not start with a digit", s)
	}
	for i := 0; i < len(v.upstream); i++ {
		if c := v.upstream[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".-+~:", rune(c)) {
			return v, fmt.Errorf("debian version %q: invalid character %q in upstream version", s, c)
		}
	}
	for i := 0; i < len(v.revision); i++ {
		if c := v.revision[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".+~", rune(c)) {
			return v, fmt.Errorf("debian version %q: invalid character %q in revision", s, c)
		}
	}
	return v, nil
}

func compareDebian(a, b debianVersion) int {
	if a.epoch != b.epoch {
		return a.epoch - b.epoch
	}
	if c := verrevcmp(a.upstream, b.upstream); c != 0 {
		return c
	}
	return verrevcmp(a.revision, b.revision)
}

// verrevcmp is dpkg's comparison of an upstream version or a revision:
// alternating non-digit runs (compared by debOrder, character by character)
// and digit runs (compared numerically).
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isDigit(a[i]) || j < len(b) && !isDigit(b[j]) {
			ac, bc := debOrder(a, i), debOrder(b, j)
			if ac != bc {
				return ac - bc
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		firstDiff := 0
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}

// debOrder is dpkg's order(): the end of the string and digits weigh 0,
// "~" sorts before them, letters after, and other symbols after letters.
func debOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	switch c := s[i]; {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	default:
		return int(c) + 256
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
