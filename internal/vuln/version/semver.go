package version

import (
	"fmt"
	"strings"
)

// semVersion is a SemVer 2.0.0 version without its build metadata, which
// takes no part in precedence.
type semVersion struct {
	core [3]string // numeric identifiers without leading zeros
	pre  []string  // pre-release identifiers; none for a release
}

func parseSemVer(s string) (semVersion, error) {
	var v semVersion
	t := strings.TrimPrefix(s, "v") // Go module versions carry a "v"
	t, build, hasBuild := strings.Cut(t, "+")
	if hasBuild {
		if err := semIdentifiers(build, false); err != nil {
			return v, fmt.Errorf("semver %q: build metadata: %w", s, err)
		}
	}
	core, pre, hasPre := strings.Cut(t, "-")
	if hasPre {
		if err := semIdentifiers(pre, true); err != nil {
			return v, fmt.Errorf("semver %q: pre-release: %w", s, err)
		}
		v.pre = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("semver %q is not MAJOR.MINOR.PATCH", s)
	}
	for i, p := range parts {
		if !allDigits(p) || len(p) > 1 && p[0] == '0' {
			return v, fmt.Errorf("semver %q: %q is not a number without leading zeros", s, p)
		}
		v.core[i] = p
	}
	return v, nil
}

// semIdentifiers checks dot-separated identifiers of [0-9A-Za-z-]; numeric
// pre-release identifiers may not have leading zeros.
func semIdentifiers(s string, pre bool) error {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return fmt.Errorf("empty identifier")
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; !isDigit(c) && !isAlpha(c) && c != '-' {
				return fmt.Errorf("invalid character %q in %q", c, id)
			}
		}
		if pre && allDigits(id) && len(id) > 1 && id[0] == '0' {
			return fmt.Errorf("numeric identifier %q has a leading zero", id)
		}
	}
	return nil
}

func compareSemVer(a, b semVersion) int {
	for i := range a.core {
		if c := compareNumeric(a.core[i], b.core[i]); c != 0 {
			return c
		}
	}
	// A pre-release has lower precedence than its release.
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		xn, yn := allDigits(x), allDigits(y)
		var c int
		switch {
		case xn && yn:
			c = compareNumeric(x, y)
		case xn:
			c = -1 // numeric identifiers sort before alphanumeric ones
		case yn:
			c = 1
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	return len(a.pre) - len(b.pre)
}
