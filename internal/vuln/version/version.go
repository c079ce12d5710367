// Package version orders package versions the way each packaging scheme
// does: dpkg for Debian and Ubuntu, apk-tools for Alpine, SemVer 2.0 for
// Go, npm and crates.io, and a documented fallback for everything else.
// Versions are never compared as strings: "1.10" > "1.9", "1.0~rc1" < "1.0",
// "1:0.1" > "2.0" and "6.1.11" > "6.1.9" all need the scheme's own rules.
package version

import (
	"fmt"
	"strings"
)

// Scheme names a version ordering.
type Scheme string

// The schemes Compare knows.
const (
	// Debian is dpkg's ordering: [epoch:]upstream[-revision], "~" before
	// everything including the end, letters before other symbols, digit
	// runs numerically. Ubuntu uses it too.
	Debian Scheme = "debian"
	// Alpine is apk-tools' ordering:
	// digits{.digits}[letter]{_suffix[digits]}[~hash][-rN].
	Alpine Scheme = "alpine"
	// SemVer is Semantic Versioning 2.0.0; a leading "v" (Go modules) is
	// accepted and build metadata is ignored.
	SemVer Scheme = "semver"
	// Generic is a best-effort ordering for schemes not modelled here:
	// digit runs compare numerically, letter runs case-insensitively and
	// below numbers, so "1.0rc1" < "1.0" < "1.0.1" and "1.0" = "1.0.0".
	Generic Scheme = "generic"
)

// Compare returns -1, 0 or +1 as a is older than, the same as, or newer
// than b under scheme s. It fails if either is not a valid version.
func Compare(s Scheme, a, b string) (int, error) {
	switch s {
	case Debian:
		return compareParsed(parseDebian, compareDebian, a, b)
	case Alpine:
		return compareParsed(parseAlpine, compareAlpine, a, b)
	case SemVer:
		return compareParsed(parseSemVer, compareSemVer, a, b)
	case Generic:
		return compareParsed(parseGeneric, compareGeneric, a, b)
	}
	return 0, unknownScheme(s)
}

// Valid reports why v is not a version under scheme s, or nil.
func Valid(s Scheme, v string) error {
	var err error
	switch s {
	case Debian:
		_, err = parseDebian(v)
	case Alpine:
		_, err = parseAlpine(v)
	case SemVer:
		_, err = parseSemVer(v)
	case Generic:
		_, err = parseGeneric(v)
	default:
		return unknownScheme(s)
	}
	return err
}

func compareParsed[T any](parse func(string) (T, error), cmp func(T, T) int, a, b string) (int, error) {
	pa, err := parse(a)
	if err != nil {
		return 0, err
	}
	pb, err := parse(b)
	if err != nil {
		return 0, err
	}
	return sign(cmp(pa, pb)), nil
}

func unknownScheme(s Scheme) error {
	return fmt.Errorf("unknown version scheme %q", string(s))
}

// SchemeFor returns the ordering of an OSV ecosystem such as "Debian:9",
// "Ubuntu:Pro:18.04:LTS", "Alpine:v3.16", "Go" or "npm". The release suffix
// does not change the ordering.
//
// Ecosystems whose own ordering is not implemented here get Generic:
// PyPI (PEP 440: post-releases and epochs misorder), Maven, RubyGems,
// NuGet, the RPM distributions, and Packagist, whose Composer versions
// ("2.4", "1.0.0.1", "2.4.3-p1" after "2.4.3") are not SemVer, so strict
// SemVer would reject real records.
func SchemeFor(ecosystem string) Scheme {
	base, _, _ := strings.Cut(ecosystem, ":")
	switch base {
	case "Debian", "Ubuntu":
		return Debian
	case "Alpine", "Chainguard", "Wolfi":
		return Alpine
	case "Go", "npm", "crates.io", "Hex", "Pub", "SwiftURL":
		return SemVer
	}
	return Generic
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// compareNumeric orders two non-empty digit strings by value, at any length.
func compareNumeric(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
