package osv

import (
	"regexp"
	"slices"
	"strings"

	"github.com/steward-iot/steward/internal/vuln/version"
)

// Package is a component to check against records. For distributions, Name
// and Version are the source package's (openssl, not libssl1.1) and
// Ecosystem carries the release ("Debian:9", "Ubuntu:22.04:LTS",
// "Alpine:v3.16"). Purl is the component's own purl; it takes no part in
// matching, which is by ecosystem and name as in OSV.
type Package struct {
	Ecosystem string
	Name      string
	Version   string
	Purl      string
}

// Match says why a package is affected.
type Match struct {
	Affected int // index in Record.Affected
	// Range is the index in that entry's Ranges, or -1 when the version
	// matched only by being listed in its versions[].
	Range int
	// Fixed is the first fixed version above the package's version in the
	// matching range (any range of the entry for a versions[] match), or ""
	// when none is known.
	Fixed string
}

// Affects reports whether pkg has the vulnerability, and where the record
// says so. A withdrawn record, and an entry without a package, affect
// nothing. A version that its
// ecosystem's ordering cannot read matches only by exact listing in
// versions[].
//
// Ecosystems match exactly, with these distribution rules: an affected
// entry without a release ("Debian", "Ubuntu", "Alpine") covers every
// release, while one with a release covers that release only; "Debian:9"
// also covers a package given as "Debian:9.5"; the Ubuntu ":LTS" suffix and
// the Alpine "v" are not needed to match; Ubuntu Pro ("Ubuntu:Pro:16.04:LTS")
// is an ecosystem of its own, which PackagesFromPurl adds for LTS releases.
// Names match exactly, except Go module paths (case-insensitively, because
// purl tools lower-case them) and PyPI names (PEP 503 normalized).
func (r *Record) Affects(pkg Package) (Match, bool) {
	if !r.Withdrawn.IsZero() || pkg.Version == "" {
		return Match{}, false
	}
	for i := range r.Affected {
		a := &r.Affected[i]
		if a.Package.Name == "" {
			continue // a package-less entry describes commits only
		}
		if !sameEcosystem(a.Package.Ecosystem, pkg.Ecosystem) || !sameName(pkg.Ecosystem, a.Package.Name, pkg.Name) {
			continue
		}
		for j := range a.Ranges {
			if fixed, ok := a.Ranges[j].contains(a.Package.Ecosystem, pkg.Version); ok {
				return Match{Affected: i, Range: j, Fixed: fixed}, true
			}
		}
		if a.listed(pkg.Version) {
			return Match{Affected: i, Range: -1, Fixed: a.nextFixed(pkg.Version)}, true
		}
	}
	return Match{}, false
}

// listed is the schema's IncludedInVersions. Equality follows the
// ecosystem's ordering where it can read both ("1.0" and "0:1.0" are one
// Debian version), else the strings must be identical.
func (a *Affected) listed(v string) bool {
	scheme := version.SchemeFor(a.Package.Ecosystem)
	for _, l := range a.Versions {
		if l == v {
			return true
		}
		if c, err := version.Compare(scheme, l, v); err == nil && c == 0 {
			return true
		}
	}
	return false
}

// nextFixed is the lowest fixed version above v in the entry's evaluated
// ranges. Fixes are only compared within one ordering, so should SEMVER and
// ECOSYSTEM ranges of an entry order differently, the first one's wins.
func (a *Affected) nextFixed(v string) string {
	var best string
	var bestScheme version.Scheme
	for _, r := range a.Ranges {
		scheme, ok := r.scheme(a.Package.Ecosystem)
		if !ok || best != "" && scheme != bestScheme {
			continue
		}
		for _, e := range r.Events {
			if e.Kind == Fixed && less(scheme, v, e.Version) && (best == "" || less(scheme, e.Version, best)) {
				best, bestScheme = e.Version, scheme
			}
		}
	}
	return best
}

// contains is the schema's IncludedInRanges for one range: the events,
// sorted, form a timeline and v is affected if the last event at or before
// it opened the range. It returns the fixed version that closes v's
// interval, if any.
func (r *AffectedRange) contains(ecosystem, v string) (string, bool) {
	scheme, ok := r.scheme(ecosystem)
	if !ok || version.Valid(scheme, v) != nil {
		return "", false
	}
	if !r.beforeLimits(scheme, v) {
		return "", false
	}
	for _, e := range r.Events {
		if eventRank(e) == 0 && version.Valid(scheme, e.Version) != nil {
			return "", false // only a hand-built range gets here: Parse checks versions
		}
	}
	events := slices.Clone(r.Events)
	slices.SortStableFunc(events, func(x, y Event) int { return compareEvents(scheme, x, y) })
	affected, last := false, -1
	for i, e := range events {
		switch e.Kind {
		case Introduced:
			if e.Version == "0" || !less(scheme, v, e.Version) {
				affected, last = true, i
			}
		case Fixed:
			if !less(scheme, v, e.Version) {
				affected = false
			}
		case LastAffected:
			if less(scheme, e.Version, v) {
				affected = false
			}
		}
	}
	if !affected {
		return "", false
	}
	for _, e := range events[last+1:] {
		if e.Kind == Fixed {
			return e.Version, true
		}
	}
	return "", true
}

// beforeLimits is the schema's BeforeLimits: with limit events, v must be
// below one of them; a limit containing "*" is infinity.
func (r *AffectedRange) beforeLimits(scheme version.Scheme, v string) bool {
	limited := false
	for _, e := range r.Events {
		if e.Kind != Limit {
			continue
		}
		limited = true
		if strings.Contains(e.Version, "*") || less(scheme, v, e.Version) {
			return true
		}
	}
	return !limited
}

// compareEvents orders events by version; introduced "0" comes before
// everything, and a limit "*" after.
func compareEvents(scheme version.Scheme, x, y Event) int {
	xr, yr := eventRank(x), eventRank(y)
	if xr != 0 || yr != 0 {
		return xr - yr
	}
	c, _ := version.Compare(scheme, x.Version, y.Version) // both checked by the caller
	return c
}

func eventRank(e Event) int {
	switch {
	case e.Kind == Introduced && e.Version == "0":
		return -1
	case e.Kind == Limit && strings.Contains(e.Version, "*"):
		return 1
	}
	return 0
}

// less reports a < b; versions that do not compare are not less.
func less(scheme version.Scheme, a, b string) bool {
	c, err := version.Compare(scheme, a, b)
	return err == nil && c < 0
}

func sameEcosystem(affected, pkg string) bool {
	if affected == pkg {
		return true
	}
	base, release, hasRelease := strings.Cut(affected, ":")
	pkgBase, pkgRelease, pkgHasRelease := strings.Cut(pkg, ":")
	if base != pkgBase {
		return false
	}
	switch base {
	case "Debian", "Ubuntu", "Alpine":
	default:
		return false
	}
	if !hasRelease {
		return true // the entry covers every release
	}
	return pkgHasRelease && normalRelease(base, release) == normalRelease(base, pkgRelease)
}

// normalRelease reduces a distribution release to what identifies it:
// Debian's major version, Ubuntu's release without ":LTS", Alpine's
// major.minor branch without "v".
func normalRelease(distro, release string) string {
	switch distro {
	case "Debian":
		major, _, _ := strings.Cut(release, ".")
		return major
	case "Ubuntu":
		return strings.TrimSuffix(release, ":LTS")
	}
	parts := strings.SplitN(strings.TrimPrefix(release, "v"), ".", 3)
	return strings.Join(parts[:min(len(parts), 2)], ".")
}

var pep503 = regexp.MustCompile(`[-_.]+`)

func sameName(ecosystem, affected, pkg string) bool {
	switch base, _, _ := strings.Cut(ecosystem, ":"); base {
	case "Go":
		return strings.EqualFold(affected, pkg)
	case "PyPI":
		return pep503.ReplaceAllString(strings.ToLower(affected), "-") == pep503.ReplaceAllString(strings.ToLower(pkg), "-")
	}
	return affected == pkg
}
